#!/usr/bin/env bash
# The orders-contention load at a small bounded size (about 20 s): a stratum of its own on 4 shards with 2
# connections each, 16 requests released at once, every check of the scenario. Exits non-zero on any failure.
# Needs a PostgreSQL with prepared transactions: ADMIN_URL (default postgres://postgres@127.0.0.1:5432/postgres).
set -euo pipefail
cd "$(dirname "$0")/.."

admin=${ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
db=stratum_contention_ci_$$
port=${CONTENTION_PORT:-18091}
url="${admin%/*}/$db"
log=$(mktemp /tmp/stratum-contention.XXXXXX.log)

drop_all() {
  for name in "$db" "${db}_orders_0" "${db}_orders_1" "${db}_orders_2" "${db}_orders_3"; do
    psql "$admin" -qc "drop database if exists $name with (force)" 2>/dev/null || true
  done
}
server=
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  drop_all
  rm -f "$log"
}
trap cleanup EXIT

drop_all
psql "$admin" -qc "create database $db"
DATABASE_URL=$url ORDERS_SHARD_COUNT=4 SHARD_POOL_MAX=2 TX_DEADLINE_MS=2000 PORT=$port LOG_LEVEL=warn \
  REDIS_URL= BROKER= BROKER_URL= node bin/stratum.js serve >"$log" 2>&1 &
server=$!
for _ in $(seq 1 120); do
  if curl -fs "http://127.0.0.1:$port/readyz" >/dev/null; then break; fi
  if ! kill -0 "$server" 2>/dev/null; then echo "the server did not start:" >&2; cat "$log" >&2; exit 1; fi
  sleep 0.5
done
curl -fs "http://127.0.0.1:$port/readyz" >/dev/null || { echo "the server never became ready:" >&2; tail -20 "$log" >&2; exit 1; }

node --import tsx tools/main.ts loadtest orders-contention --url "http://127.0.0.1:$port" --rate 120 --duration 15 --concurrency 16 \
  --database-url "$url" --deadline-ms 2000 --settle 30 --seed "${CONTENTION_SEED:-1}"
