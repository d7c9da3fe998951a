revoke all on all tables in schema images from stratum_images;
revoke all on schema images from stratum_images;
-- And what the migration runs granted it on platform tables (the outbox, idempotency keys) in this database.
do $$
begin
  if exists (select 1 from pg_roles where rolname = 'stratum_images') then
    drop owned by stratum_images;
  end if;
end $$;
-- Other databases of the server may still grant it something: then the role stays.
do $$
begin
  drop role stratum_images;
exception when dependent_objects_still_exist then
  null;
end $$;
