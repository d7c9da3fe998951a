-- Superseded: the shard's outbox is the outbox migration's. Kept so shards that applied it stay up to date.
select;
