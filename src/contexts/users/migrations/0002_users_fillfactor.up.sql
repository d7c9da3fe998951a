-- Every creation rewrites every user's score. With free space on each page, PostgreSQL can update a row in
-- place (a HOT update: score and updated are not indexed), instead of moving it and adding index entries.
alter table users.users set (fillfactor = 45);
