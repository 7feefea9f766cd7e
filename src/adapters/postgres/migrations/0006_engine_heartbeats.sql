-- Which engines are alive, as Postgres sees them. `shards.owner` names the engine that claimed a
-- shard last, and is cleared only when it hands the shard off: an engine that crashed (or every
-- engine, in an outage) goes on being named. Engines refresh their row at every rebalance round,
-- with the expiry of their Redis membership; the operator counts a shard as owned only while its
-- owner's row has not expired (the TicketEvent's ShardsAvailable and Ready, ADR 0005).
CREATE TABLE engine_heartbeats (
  engine_id text PRIMARY KEY,
  expires_at timestamptz NOT NULL
);
