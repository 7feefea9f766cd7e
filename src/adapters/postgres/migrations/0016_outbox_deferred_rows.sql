-- An outbox row Kafka refuses for a fault of its own (larger than the topic's max.message.bytes,
-- a record the broker's validation rejects) used to be claimed and refused round after round, and
-- every later row of its topic waited behind it. The relay now defers such a row: it is not
-- claimed again before `deferred_until`, and the rows after it are published meanwhile (their keys
-- are reservation ids, one message each, so no consumer's per-key order depends on it). It is
-- tried again then, and goes out once the broker takes it; until then it counts as unpublished
-- (the backlog metrics, verify, the operator's deletion) and `last_error` says why.
-- A nullable column without a default: a change of the catalog only, no rewrite of the table.
ALTER TABLE outbox ADD COLUMN deferred_until timestamptz;
