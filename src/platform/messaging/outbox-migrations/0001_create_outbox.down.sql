drop table if exists messaging.outbox;
-- The schema goes with its last table (the main database's messaging tables are another migration's).
do $$
begin
  if not exists (select 1 from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'messaging') then
    drop schema if exists messaging;
  end if;
end $$;
