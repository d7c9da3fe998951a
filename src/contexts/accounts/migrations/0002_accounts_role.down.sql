revoke all on all tables in schema accounts from stratum_accounts;
revoke all on schema accounts from stratum_accounts;
-- Other databases of the server may still grant it something: then the role stays.
do $$
begin
  drop role stratum_accounts;
exception when dependent_objects_still_exist then
  null;
end $$;
