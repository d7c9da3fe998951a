drop table if exists accounts.account_events;
drop table if exists accounts.accounts;
drop schema if exists accounts;
