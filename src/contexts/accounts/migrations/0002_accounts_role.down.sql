revoke all on all tables in schema accounts from stratum_accounts;
revoke all on schema accounts from stratum_accounts;
-- And what the migration runs granted it on platform tables (the outbox, idempotency keys) in this database.
do $$
begin
  if exists (select 1 from pg_roles where rolname = 'stratum_accounts') then
    drop owned by stratum_accounts;
  end if;
end $$;
-- Other databases of the server may still grant it something: then the role stays.
do $$
begin
  drop role stratum_accounts;
exception when dependent_objects_still_exist then
  null;
end $$;
