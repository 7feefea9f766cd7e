-- The live-holds index gains the expiry: the engines' search for shards to settle (every 5 s,
-- InventoryStore.shardsToSettle) asks, of a postponed sale's shard, whether its earliest live hold
-- is due — one probe with the expiry in the index, a read of every live hold of the shard without.
-- The leading columns are those of the index it replaces, so the skip scan over shards with live
-- holds and the loading of a shard's live holds use it as before.
CREATE INDEX holds_live_by_shard_expiry ON holds (event_id, shard, expires_at) WHERE state = 'live';
DROP INDEX holds_live_by_shard;
