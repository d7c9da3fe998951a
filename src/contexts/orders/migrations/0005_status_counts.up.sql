-- Orders by bucket and status, kept by statement-level triggers in the writing transaction: stats read at most
-- 4 x 1024 small rows instead of counting every order. Per bucket, so writers of different customers rarely
-- touch the same counter, and a shard can count only the buckets it owns; a bucket's counters follow its rows
-- when it moves (the triggers fire on the copy and on the clean-up).
create table orders.status_counts (
  bucket int not null,
  status text not null,
  n bigint not null,
  primary key (bucket, status)
);
insert into orders.status_counts (bucket, status, n) select bucket, status, count(*) from orders.orders group by bucket, status;

-- Counter rows are always touched in (bucket, status) order, so two writers cannot deadlock on them.
create function orders.count_inserted() returns trigger language plpgsql as $$
begin
  insert into orders.status_counts (bucket, status, n)
    select bucket, status, count(*) from inserted group by bucket, status order by bucket, status
  on conflict (bucket, status) do update set n = orders.status_counts.n + excluded.n;
  return null;
end $$;
create function orders.count_deleted() returns trigger language plpgsql as $$
begin
  update orders.status_counts c set n = c.n - d.n
    from (select bucket, status, count(*) as n from deleted group by bucket, status order by bucket, status) d
    where c.bucket = d.bucket and c.status = d.status;
  return null;
end $$;
create function orders.count_updated() returns trigger language plpgsql as $$
begin
  insert into orders.status_counts (bucket, status, n)
    select bucket, status, sum(n) from (
      select bucket, status, -count(*) as n from old_rows group by bucket, status
      union all
      select bucket, status, count(*) from new_rows group by bucket, status
    ) delta group by bucket, status having sum(n) <> 0 order by bucket, status
  on conflict (bucket, status) do update set n = orders.status_counts.n + excluded.n;
  return null;
end $$;
create trigger orders_count_inserted after insert on orders.orders
  referencing new table as inserted for each statement execute function orders.count_inserted();
create trigger orders_count_deleted after delete on orders.orders
  referencing old table as deleted for each statement execute function orders.count_deleted();
create trigger orders_count_updated after update on orders.orders
  referencing old table as old_rows new table as new_rows for each statement execute function orders.count_updated();
