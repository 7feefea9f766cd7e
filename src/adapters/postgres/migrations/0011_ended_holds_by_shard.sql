-- sentinel:no-transaction
-- The ended holds of a shard, by when they ended. A shard's rebuild (every claim: a failover, a
-- rebalance, a restart) reads the holds its shard ended within the idempotency window, newest
-- first (InventoryStore.loadShard); no index served that read (0007's covers live holds only), so
-- each rebuild scanned every hold ever made, of every event. Built CONCURRENTLY — writes to holds
-- go on meanwhile — and so outside a transaction. The step may run again from its start: the
-- migration runner drops an index a failed or cut-off build left invalid (concurrently), and
-- IF NOT EXISTS keeps a valid one (a build whose step was not recorded).
CREATE INDEX CONCURRENTLY IF NOT EXISTS holds_ended_by_shard ON holds (event_id, shard, ended_at) WHERE state <> 'live';
