drop table if exists orders.order_items;
drop table if exists orders.orders;
drop table if exists orders.customers;
drop schema if exists orders;
