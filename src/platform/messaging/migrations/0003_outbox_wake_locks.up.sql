-- Superseded: the outbox's shape and its writers' rights are the outbox migration's and the contexts'
-- descriptors' (granted at every migration run). Kept so databases that applied it stay up to date.
select;
