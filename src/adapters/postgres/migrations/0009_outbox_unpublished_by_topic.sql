-- The unpublished outbox rows indexed by topic first. Each relay claims only its own topic's rows
-- (OutboxRelay), oldest first, and looks for them when idle; through the index of 0001, on `id`
-- alone, both walked every unpublished row of every other topic ahead of its own, one heap read
-- each, before reaching one of its own — a backlog stranded under another topic (a deployment that
-- was renamed or stopped) was read through again at every round of every relay. Now both go
-- straight to the topic's rows, in `id` order. The table is locked against writes while the index
-- is built (a scan of the table, which retention keeps to about a week of reservations): apply it
-- between sales.
CREATE INDEX outbox_unpublished_by_topic ON outbox (topic, id) WHERE published_at IS NULL;
DROP INDEX outbox_unpublished;
