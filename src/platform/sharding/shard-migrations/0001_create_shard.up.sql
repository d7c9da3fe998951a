-- What every shard database carries besides its context's schema: its identity and the buckets it owns
-- (its outbox is the outbox migration's).
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
