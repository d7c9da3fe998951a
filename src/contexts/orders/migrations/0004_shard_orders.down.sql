drop table orders.stock_reservations;
drop table orders.inventory;
drop table orders.forwarded_orders;
drop sequence orders.order_seq;
drop index orders.orders_bucket_idx;
alter table orders.orders drop column saga_id;
alter table orders.orders drop column bucket;
drop function orders.bucket_of(bigint);
