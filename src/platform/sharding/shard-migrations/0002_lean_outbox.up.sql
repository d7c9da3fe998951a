-- The shard's outbox as lean as the main one (messaging/0004): no index the relay's mark would have to update per
-- event; clean-up walks the primary key.
alter table messaging.outbox drop constraint outbox_id_key;
drop index messaging.outbox_sent_at_idx;
