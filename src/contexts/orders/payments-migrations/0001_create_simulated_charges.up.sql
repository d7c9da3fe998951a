-- The bundled payments simulator's ledger (an external provider keeps its own): one charge per key. On the main
-- database, beside the saga progress it serves. Databases created before this migration kept it in the shard
-- catalog's schema: its rows move here.
create schema if not exists payments;
create table payments.simulated_charges (
  idempotency_key text primary key,
  amount numeric(12,2) not null,
  status text not null check (status in ('charged', 'refunded')),
  created_at timestamptz not null default now()
);
do $$
begin
  if to_regclass('sharding.simulated_charges') is not null then
    insert into payments.simulated_charges (idempotency_key, amount, status, created_at)
      select idempotency_key, amount, status, created_at from sharding.simulated_charges;
    drop table sharding.simulated_charges;
  end if;
end $$;
