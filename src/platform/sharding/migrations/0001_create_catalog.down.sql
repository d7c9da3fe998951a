drop table sharding.sagas;
drop table sharding.decisions;
drop table sharding.buckets;
drop table sharding.map_versions;
drop table sharding.catalog;
drop table sharding.shards;
drop schema sharding;
