-- sentinel:no-transaction
-- The ended holds of a shard, by when they ended. A shard's rebuild (every claim: a failover, a
-- rebalance, a restart) reads the holds its shard ended within the idempotency window, newest
-- first (InventoryStore.loadShard); no index served that read (0007's covers live holds only), so
-- each rebuild scanned every hold ever made, of every event. Built CONCURRENTLY — writes to holds
-- go on meanwhile — and so outside a transaction, one statement at a time: a build that failed
-- leaves an invalid index, dropped when the step is tried again.
DROP INDEX CONCURRENTLY IF EXISTS holds_ended_by_shard;
CREATE INDEX CONCURRENTLY holds_ended_by_shard ON holds (event_id, shard, ended_at) WHERE state <> 'live';
