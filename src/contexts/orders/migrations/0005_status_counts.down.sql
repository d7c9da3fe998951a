drop trigger orders_count_updated on orders.orders;
drop trigger orders_count_deleted on orders.orders;
drop trigger orders_count_inserted on orders.orders;
drop function orders.count_updated();
drop function orders.count_deleted();
drop function orders.count_inserted();
drop table orders.status_counts;
