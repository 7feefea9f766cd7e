-- Engines look every round for shards that still name an owner although their sale is over
-- (InventoryStore.shardsToSettle): an owner that crashed after the close never ended their live
-- holds. Nearly every shard of a past sale has no owner, so this index stays small.
CREATE INDEX shards_owned ON shards (event_id, shard) WHERE owner IS NOT NULL;
