create schema if not exists messaging;

-- Events written in the same transaction as the business change; the relay publishes them in seq order.
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

-- The contexts with roles of their own write their events into the outbox.
do $$
declare r text;
begin
  foreach r in array array['stratum_accounts', 'stratum_images'] loop
    if exists (select 1 from pg_roles where rolname = r) then
      execute format('grant usage on schema messaging to %I', r);
      execute format('grant insert, select (id) on messaging.outbox to %I', r);
    end if;
  end loop;
end $$;
