-- sentinel:no-transaction
-- The ended holds of a shard, by when they ended. A shard's rebuild (every claim: a failover, a
-- rebalance, a restart) reads the holds its shard ended within the idempotency window, newest
-- first (InventoryStore.loadShard); no index served that read (0007's covers live holds only), so
-- each rebuild scanned every hold ever made, of every event. Built CONCURRENTLY — writes to holds
-- go on meanwhile — and so outside a transaction, one statement at a time. The step may run again
-- from its start: an index a failed or cut-off build left invalid is dropped and built anew, a
-- valid one (a build whose step was not recorded) is kept.
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_index WHERE indexrelid = to_regclass('holds_ended_by_shard') AND NOT indisvalid) THEN
    DROP INDEX holds_ended_by_shard;
  END IF;
END
$$;
CREATE INDEX CONCURRENTLY IF NOT EXISTS holds_ended_by_shard ON holds (event_id, shard, ended_at) WHERE state <> 'live';
