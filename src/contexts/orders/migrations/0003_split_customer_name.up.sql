-- Splits "First Rest Of Name" at the first space: first_name = "First", last_name = "Rest Of Name".
-- The down migration joins them back with one space, which restores every name without leading, trailing
-- or doubled spaces.
alter table orders.customers add column first_name text, add column last_name text;
update orders.customers
   set first_name = split_part(name, ' ', 1),
       last_name = nullif(substr(name, length(split_part(name, ' ', 1)) + 2), '')
 where name is not null;
alter table orders.customers drop column name;
