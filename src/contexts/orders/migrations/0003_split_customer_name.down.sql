alter table orders.customers add column name text;
update orders.customers
   set name = nullif(concat_ws(' ', nullif(first_name, ''), last_name), '')
 where first_name is not null or last_name is not null;
alter table orders.customers drop column first_name, drop column last_name;
