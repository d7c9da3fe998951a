-- Writers no longer read which outbox rows are unsent to decide whether to wake the relay (two advisory locks
-- decide it, see relay-wake.ts): take back the column read that 0002 granted for that.
do $$
declare r text;
begin
  foreach r in array array['stratum_accounts', 'stratum_images'] loop
    if exists (select 1 from pg_roles where rolname = r) then
      execute format('revoke select (seq, sent_at) on messaging.outbox from %I', r);
    end if;
  end loop;
end $$;
