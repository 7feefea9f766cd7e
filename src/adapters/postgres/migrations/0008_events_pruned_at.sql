-- When the engines' retention (src/engine/retention.ts) last deleted rows of the event — expired
-- idempotency keys or old published outbox rows. `sentinel verify` reads both, so it refuses to
-- judge an event once some were deleted rather than report their absence as violations. Adding a
-- nullable column rewrites nothing.
ALTER TABLE events ADD COLUMN pruned_at timestamptz;
