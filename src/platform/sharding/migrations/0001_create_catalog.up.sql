-- The shard catalog: which shards exist, the versioned bucket map, the two-phase commit decisions.
create schema if not exists sharding;

-- A shard is a database: on the catalog's own server (database) or anywhere (url, may be multi-host).
create table sharding.shards (
  id int primary key check (id between 0 and 63),
  database text,
  url text,
  added_at timestamptz not null default now(),
  check ((database is null) <> (url is null))
);

-- Identifies this catalog; every shard is stamped with it, so a shard of another catalog is refused.
create table sharding.catalog (
  only_row boolean primary key default true check (only_row),
  id uuid not null default gen_random_uuid(),
  created_at timestamptz not null default now()
);

-- Every change of the bucket map is a new version; buckets say which version last moved them.
create table sharding.map_versions (
  version int primary key,
  shard_count int not null,
  note text not null,
  created_at timestamptz not null default now()
);
create table sharding.buckets (
  bucket int primary key check (bucket between 0 and 1023),
  shard_id int not null references sharding.shards (id),
  version int not null references sharding.map_versions (version)
);

-- A two-phase commit's outcome, decided once: the coordinator inserts 'commit' after every shard prepared;
-- recovery inserts 'abort' for an old in-doubt transaction without one. The primary key lets only one win.
create table sharding.decisions (
  gid text primary key,
  decision text not null check (decision in ('commit', 'abort')),
  shard_ids int[] not null,
  decided_at timestamptz not null default now()
);

-- Saga progress: the step reached and what the steps produced, so a restarted process resumes or compensates.
create table sharding.sagas (
  id uuid primary key,
  kind text not null,
  status text not null check (status in ('running', 'compensating', 'completed', 'compensated')),
  step int not null default 0,
  state jsonb not null,
  failed_step text,
  error text,
  lease_owner text,
  lease_until timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index sagas_unfinished_idx on sharding.sagas (lease_until) where status in ('running', 'compensating');
