revoke all on all tables in schema images from stratum_images;
revoke all on schema images from stratum_images;
-- Other databases of the server may still grant it something: then the role stays.
do $$
begin
  drop role stratum_images;
exception when dependent_objects_still_exist then
  null;
end $$;
