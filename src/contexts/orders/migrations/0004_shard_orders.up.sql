-- The orders schema as a shard of many (the shard's own tables come first, src/platform/sharding/shard-migrations):
-- every row knows its bucket (of 1024, from the customer id), and order ids are minted so that they are unique
-- across shards and carry their bucket.

-- The bucket of a customer: the top 10 bits of a 32-bit multiplicative hash (Knuth), also computed in
-- TypeScript by bucketOfKey(); the two must agree.
create function orders.bucket_of(customer_id bigint) returns int
  language sql immutable parallel safe
  return (((customer_id::numeric * 2654435761) % 4294967296)::bigint >> 22)::int;

alter table orders.orders add column bucket int;
update orders.orders set bucket = orders.bucket_of(customer_id);
alter table orders.orders alter column bucket set not null;
-- Set by the checkout saga: one order per saga, however often its first step runs.
alter table orders.orders add column saga_id uuid unique;
create index orders_bucket_idx on orders.orders (bucket);

-- Order ids: (sequence * 64 + shard id) * 1024 + bucket. Unique across shards (the shard id), routable
-- without a lookup (the bucket), and still increasing on each shard.
create sequence orders.order_seq;

-- An order moved to another customer got a new id (its bucket changed); the old id points at the new one.
create table orders.forwarded_orders (
  old_id bigint primary key,
  new_id bigint not null,
  bucket int not null,
  moved_at timestamptz not null default now()
);
create index forwarded_orders_bucket_idx on orders.forwarded_orders (bucket);

-- Stock lives with the customer's orders so a checkout reserves it in the same shard.
create table orders.inventory (
  product_id bigint primary key,
  available int not null check (available >= 0)
);
create table orders.stock_reservations (
  saga_id uuid not null,
  product_id bigint not null,
  quantity int not null check (quantity > 0),
  bucket int not null,
  reserved_at timestamptz not null default now(),
  primary key (saga_id, product_id)
);
