-- Expand only: a nullable column with no default rewrites nothing and breaks no running code.
alter table orders.orders add column notes text;
