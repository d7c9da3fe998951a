-- The images context's own role: rights on its own schema only. Roles are cluster-wide, so another
-- database of the same server may have created it already. stratum gives it LOGIN and a password at start.
do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'stratum_images') then
    create role stratum_images nologin;
  end if;
exception when duplicate_object or unique_violation then
  null; -- created a moment ago by a migration of another database
end $$;

grant usage on schema images to stratum_images;
grant select, insert, update, delete on all tables in schema images to stratum_images;
