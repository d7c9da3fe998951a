create index outbox_sent_at_idx on messaging.outbox (sent_at) where sent_at is not null;
alter table messaging.outbox add constraint outbox_id_key unique (id);
