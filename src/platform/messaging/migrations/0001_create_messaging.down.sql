do $$
declare r text;
begin
  foreach r in array array['stratum_accounts', 'stratum_images'] loop
    if exists (select 1 from pg_roles where rolname = r) then
      execute format('revoke all on messaging.outbox from %I', r);
      execute format('revoke all on schema messaging from %I', r);
    end if;
  end loop;
end $$;
drop table if exists messaging.dead_letters;
drop table if exists messaging.positions;
drop table if exists messaging.consumers;
drop table if exists messaging.log;
drop table if exists messaging.processed_messages;
drop table if exists messaging.outbox;
drop schema if exists messaging;
