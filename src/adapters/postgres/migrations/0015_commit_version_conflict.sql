-- A group commit's versioned write that matches fewer rows than it should — a seat or pool not at
-- the version its shard saw, a hold no longer live — raises SNVER, no longer SNFEN. SNFEN now means
-- only that a shard's epoch moved on: another engine claimed it, which happens in every take-over.
-- A row changed underneath while the epoch is still the shard's own means that nobody took the
-- shard over but its memory and Postgres disagree (a commit whose answer was lost that landed after
-- all, a write from outside the engine, a bug); the engine stops and rebuilds the shard as after a
-- fence, but logs and counts it apart (sentinel_engine_lease_events_total{event="version_conflict"}).
--
-- Both commit functions, sentinel_commit_batch (its body in 0005) and sentinel_commit_shards
-- (0010), check their versioned writes through this function alone, so replacing it is the whole
-- change: their bodies are unchanged. An engine of the previous release does not know SNVER: it
-- takes it for a commit that failed, which stops and rebuilds the shard all the same.
CREATE OR REPLACE FUNCTION sentinel_expect_written(p_event text, p_shard integer, p_what text, p_expected integer, p_written integer)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
  IF p_written <> p_expected THEN
    -- sentinel_commit_shards passes no shard (its rows are of several): the engine then commits
    -- each shard's part on its own, which names the shard.
    RAISE EXCEPTION USING ERRCODE = 'SNVER',
      MESSAGE = format('%s: a %s changed underneath (%s of %s versioned writes matched)',
                       CASE WHEN p_shard IS NULL THEN format('event %s', p_event) ELSE format('shard %s/%s', p_event, p_shard) END,
                       p_what, p_written, p_expected);
  END IF;
END;
$$;
