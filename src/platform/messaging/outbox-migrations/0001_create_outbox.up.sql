-- The transactional outbox, defined once and applied to every database whose writes publish events (the main
-- database, every shard): events written in the same transaction as the business change; the relay publishes
-- them in seq order and marks them sent. Lean on purpose: every index costs an insert per event at the write and
-- another at the mark, so there is none beyond the unsent rows' (event ids are random and never looked up here;
-- the clean-up of sent rows walks the primary key). "if not exists": databases created before this migration
-- already hold the same table.
create schema if not exists messaging;
create table if not exists messaging.outbox (
  seq bigint generated always as identity primary key,
  id uuid not null,
  type text not null,
  key text not null,
  payload jsonb not null,
  headers jsonb not null default '{}',
  created_at timestamptz not null default clock_timestamp(),
  sent_at timestamptz
);
create index if not exists outbox_unsent_idx on messaging.outbox (seq) where sent_at is null;
