-- What every shard database carries besides its context's schema: its identity, the buckets it owns and its
-- own outbox.
create schema shard;

-- Which shard this database is, stamped when it joins a catalog.
create table shard.info (
  only_row boolean primary key default true check (only_row),
  shard_id int not null check (shard_id between 0 and 63),
  catalog_id uuid not null
);

-- The buckets this shard serves. A writer locks its bucket's row (for key share) for its whole transaction;
-- a rebalance deletes the row to fence the bucket's writers here, who then find the bucket's new shard.
create table shard.owned_buckets (bucket int primary key check (bucket between 0 and 1023));

-- The shard's outbox: events of a write on this shard commit with it. Same shape as the main database's
-- messaging.outbox (src/platform/messaging/migrations), which the relay reads.
create schema if not exists messaging;
create table messaging.outbox (
  seq bigint generated always as identity primary key,
  id uuid not null unique,
  type text not null,
  key text not null,
  payload jsonb not null,
  headers jsonb not null default '{}',
  created_at timestamptz not null default clock_timestamp(),
  sent_at timestamptz
);
create index outbox_unsent_idx on messaging.outbox (seq) where sent_at is null;
create index outbox_sent_at_idx on messaging.outbox (sent_at) where sent_at is not null;
