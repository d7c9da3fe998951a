create schema if not exists users;

create table users.users (
  id serial primary key,
  username varchar(100) not null unique,
  score numeric not null default 0,
  created timestamptz(0) not null default now(),
  updated timestamptz(0)
);

create table users.user_profile (
  user_id int not null unique references users.users (id) on delete cascade,
  firstname varchar(100) not null,
  lastname varchar(100) not null
);

create table users.actions (
  id serial primary key,
  description text not null,
  created timestamptz(0) not null default now()
);
