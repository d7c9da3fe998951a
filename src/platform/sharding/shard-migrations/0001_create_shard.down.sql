drop table shard.owned_buckets;
drop table shard.info;
drop schema shard;
