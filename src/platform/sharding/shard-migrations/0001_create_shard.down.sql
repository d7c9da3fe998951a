drop table messaging.outbox;
drop schema if exists messaging;
drop table shard.owned_buckets;
drop table shard.info;
drop schema shard;
