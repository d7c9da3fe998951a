do $$
declare r text;
begin
  foreach r in array array['stratum_accounts', 'stratum_images'] loop
    if exists (select 1 from pg_roles where rolname = r) then
      execute format('grant select (seq, sent_at) on messaging.outbox to %I', r);
    end if;
  end loop;
end $$;
