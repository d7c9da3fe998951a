drop table idempotency.keys;
drop schema idempotency;
