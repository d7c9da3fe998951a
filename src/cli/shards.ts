import { parseArgs } from 'node:util';
import cliProgress from 'cli-progress';
import type { Config } from '../config/config.ts';
import { ordersBucketMover } from '../contexts/orders/bucket-mover.ts';
import { openDatabase } from '../app/database.ts';
import { openOrderShards } from '../contexts/orders/shards.ts';
import { BUCKET_COUNT } from '../platform/sharding/buckets.ts';
import { addShard, planRebalance, rebalance } from '../platform/sharding/rebalance.ts';
import { createDatabaseIfMissing } from '../platform/sharding/shard-set.ts';

interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
}

export const SHARDS_USAGE = 'usage: stratum shards status | add <postgres-url> | add --database <name> | rebalance';

export const SHARDS_HELP = `${SHARDS_USAGE}

  status                   the bucket map's version; each shard's buckets, orders and health
  add <postgres-url>       register a shard on its own server (migrated and stamped now; it owns no bucket yet)
  add --database <name>    register a shard as a new database on the main server
  rebalance                move the buckets the map over all shards assigns elsewhere, online (progress on a terminal)

A rebalance moves one bucket at a time: copy, a brief fence of the bucket's writers, the delta, the switch.
Requests for a moving bucket wait for the switch and are then served by the new shard. An interrupted
rebalance is repaired by the next one.`;

/** `stratum shards status|add|rebalance` */
export async function runShards(config: Config, args: string[], io: Io): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: { database: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    });
  } catch (error) {
    io.err(`stratum shards: ${(error as Error).message}`);
    io.err(SHARDS_USAGE);
    return 2;
  }
  const [action, url, ...extra] = parsed.positionals;
  if (parsed.values.help) {
    io.out(SHARDS_HELP);
    return 0;
  }
  const validAdd =
    action === 'add' &&
    extra.length === 0 &&
    (url ? !parsed.values.database && /^postgres(ql)?:\/\//i.test(url) : !!parsed.values.database);
  if (
    (!(action === 'status' || action === 'rebalance') && !validAdd) ||
    ((action === 'status' || action === 'rebalance') && (url || parsed.values.database))
  ) {
    io.err(SHARDS_USAGE);
    return 2;
  }
  const database = await openDatabase(config, 'command', (line) => io.err(`stratum: ${line}`));
  try {
    await database.migrator.up();
    const shards = await openOrderShards(config, {
      catalog: database.sql,
      target: database.target,
      applicationName: database.applicationName,
    });
    try {
      if (action === 'add') {
        const name = parsed.values.database;
        const location = name ? { database: name } : { url: url! };
        if (name) await createDatabaseIfMissing(database.target, name);
        const shard = await addShard(shards, location);
        const moving = planRebalance(shards.assignments(), shards.all().length).length;
        io.out(
          `shard ${shard.id} added: ${shard.name}; it owns no bucket yet. \`stratum shards rebalance\` moves ${moving} bucket(s) to it.`,
        );
        return 0;
      }
      if (action === 'rebalance') {
        const bar = process.stderr.isTTY
          ? new cliProgress.SingleBar(
              {
                format: 'rebalancing [{bar}] {value}/{total} buckets, {rows} rows copied {duration_formatted}',
                stream: process.stderr,
              },
              cliProgress.Presets.shades_classic,
            )
          : undefined;
        let started = false;
        const moves = await rebalance({
          shards,
          mover: ordersBucketMover,
          log: (line) => io.err(`stratum: ${line}`),
          onProgress: (p) => {
            if (!started) {
              bar?.start(p.bucketsTotal, 0, { rows: 0 });
              started = true;
            }
            bar?.update(p.bucketsDone, { rows: p.rowsCopied });
          },
        }).finally(() => bar?.stop());
        io.out(
          moves.length === 0
            ? 'nothing to move: every bucket is on its shard'
            : `moved ${moves.length} bucket(s); map version ${shards.mapVersion()}`,
        );
        return 0;
      }
      io.out(`bucket map version ${shards.mapVersion()}, ${BUCKET_COUNT} buckets over ${shards.all().length} shard(s)`);
      const assigned = shards.assignments();
      for (const shard of shards.all()) {
        const buckets = assigned.filter((s) => s === shard.id).length;
        let line: string;
        try {
          const [row] = await shard.sql<{ orders: number; owned: number }[]>`
            select (select count(*)::int from orders.orders where bucket in (select bucket from shard.owned_buckets)) as orders,
                   (select count(*)::int from shard.owned_buckets) as owned`;
          line = `${String(buckets).padStart(5)} buckets  ${String(row!.orders).padStart(9)} orders  ok${row!.owned === buckets ? '' : ` (owns ${row!.owned}: run \`stratum shards rebalance\` to repair)`}`;
        } catch (error) {
          line = `${String(buckets).padStart(5)} buckets          ?  unreachable: ${(error as Error).message}`;
        }
        io.out(`shard ${shard.id}  ${shard.name.padEnd(40)} ${line}`);
      }
      return 0;
    } finally {
      await shards.close();
    }
  } finally {
    await database.close();
  }
}
