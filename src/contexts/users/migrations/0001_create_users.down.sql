drop table if exists users.actions;
drop table if exists users.user_profile;
drop table if exists users.users;
drop schema if exists users;
