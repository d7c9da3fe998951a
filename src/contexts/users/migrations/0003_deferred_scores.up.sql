-- SCORE_MODE=deferred (docs/decisions/0031): a creation appends one row to a log of the fan-outs instead of
-- updating every other user. Row k holds the running A_k = a_1 ... a_k (a_i = 1 + 1/n_i) and
-- B_k = 1/A_1 + ... + 1/A_k; a user's score is its stored score at its base index, moved to the head by
--   score * (A_head / A_base) + A_head * (B_head - B_base).
-- Forty decimal places: A and B stay exact to far below the eager mode's sixteen significant digits.
create table users.score_log (
  k bigint primary key,
  -- The creation's n (the other users it raised); null for the origin row.
  n bigint check (n > 0),
  a numeric(80, 40) not null check (a >= 1),
  b numeric(80, 40) not null check (b >= 0),
  created timestamptz(0) not null default now()
);
-- The origin: the identity map. Compaction keeps at least one row, the one every user's base can point at.
insert into users.score_log (k, n, a, b) values (0, null, 1, 0);

-- The log's head: a user created outside the deferred mode (or loaded by COPY) is current as of it.
create function users.score_log_head() returns bigint language sql stable as $$
  select max(k) from users.score_log
$$;
alter table users.users add column score_base bigint not null default 0;
alter table users.users alter column score_base set default users.score_log_head();

-- How many users there are, kept by statement triggers (COPY and set-based inserts included), so that a
-- deferred creation learns its n without counting the table; and how many SCORE_MODE=async fan-outs are
-- committed but not yet applied, which compaction must wait for.
create table users.tally (
  only_row boolean primary key default true check (only_row),
  users bigint not null check (users >= 0),
  pending_fanouts bigint not null default 0 check (pending_fanouts >= 0)
);
insert into users.tally (users) select count(*) from users.users;

create function users.tally_users() returns trigger language plpgsql as $$
begin
  if tg_op = 'INSERT' then
    update users.tally set users = users + (select count(*) from inserted);
  elsif tg_op = 'DELETE' then
    update users.tally set users = users - (select count(*) from deleted);
  else
    update users.tally set users = 0;
  end if;
  return null;
end
$$;
create trigger tally_insert after insert on users.users
  referencing new table as inserted for each statement execute function users.tally_users();
create trigger tally_delete after delete on users.users
  referencing old table as deleted for each statement execute function users.tally_users();
create trigger tally_truncate after truncate on users.users
  for each statement execute function users.tally_users();
