-- Idempotency keys of creation requests: stored in the same transaction as the write they guard, with the
-- request's hash and the response, so a repeated request gets the same answer and an unknown commit can be
-- settled by looking the key up.
create schema if not exists idempotency;
create table idempotency.keys (
  scope text not null,
  key text not null,
  request_hash text not null,
  status int,
  body jsonb,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  primary key (scope, key)
);
create index keys_expires_at_idx on idempotency.keys (expires_at);
