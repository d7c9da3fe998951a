alter table orders.orders drop column if exists notes;
