-- The relay marks every row it publishes: each index on the outbox costs an insert per event at the write and
-- another at the mark. Event ids are random UUIDs that nothing looks up in the outbox, and the clean-up of sent
-- rows walks the primary key (oldest first) instead of an index on sent_at.
alter table messaging.outbox drop constraint outbox_id_key;
drop index messaging.outbox_sent_at_idx;
