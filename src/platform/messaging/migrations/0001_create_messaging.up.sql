create schema if not exists messaging;

-- The outbox is its own migration (outbox-migrations), applied to every database that publishes events.

-- Exactly-once effects: a consumer's effect commits together with the row saying it happened.
create table messaging.processed_messages (
  consumer_group text not null,
  message_id uuid not null,
  processed_at timestamptz not null default now(),
  primary key (consumer_group, message_id)
);

-- The PostgreSQL broker: a partitioned log, per-group positions with leases, dead letters.
create table messaging.log (
  seq bigint generated always as identity primary key,
  namespace text not null,
  partition int not null,
  target_group text, -- a replay meant for one group only
  event jsonb not null
);
create index log_partition_seq_idx on messaging.log (namespace, partition, seq);

create table messaging.positions (
  namespace text not null,
  group_name text not null,
  partition int not null,
  position bigint not null default 0,
  lease_owner text,
  lease_until timestamptz,
  primary key (namespace, group_name, partition)
);

-- Live consumers of a group (heartbeats), so partitions are shared fairly among them.
create table messaging.consumers (
  namespace text not null,
  group_name text not null,
  consumer_id text not null,
  seen_until timestamptz not null,
  primary key (namespace, group_name, consumer_id)
);

create table messaging.dead_letters (
  id uuid primary key,
  namespace text not null,
  group_name text not null,
  partition int not null,
  event jsonb not null,
  error text not null,
  attempts int not null,
  dead_at timestamptz not null default now()
);
create index dead_letters_group_idx on messaging.dead_letters (namespace, group_name, dead_at);
