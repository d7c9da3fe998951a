create schema if not exists accounts;

create table accounts.accounts (
  id uuid primary key,
  name varchar(100) not null,
  created timestamptz not null default now(),
  updated timestamptz
);

create table accounts.account_events (
  id uuid primary key,
  account_id uuid not null references accounts.accounts (id) on delete cascade,
  event_name text not null,
  created timestamptz not null
);

-- Events of one account, oldest first, straight from the index.
create index account_events_account_id_created_idx on accounts.account_events (account_id, created, id);
-- Literal name-prefix ranges: byte order, so [prefix, next prefix) is exactly the names that start with it.
create index accounts_name_c_idx on accounts.accounts ((name collate "C"));
