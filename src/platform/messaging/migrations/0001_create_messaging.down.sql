drop table if exists messaging.dead_letters;
drop table if exists messaging.positions;
drop table if exists messaging.consumers;
drop table if exists messaging.log;
drop table if exists messaging.processed_messages;
-- The schema stays while the outbox (outbox-migrations) is in it.
do $$
begin
  if not exists (select 1 from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'messaging') then
    drop schema if exists messaging;
  end if;
end $$;
