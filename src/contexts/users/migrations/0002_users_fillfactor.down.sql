alter table users.users reset (fillfactor);
