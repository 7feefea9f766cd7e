-- The group commits of several shards of one event as one call and one transaction
-- (docs/adr/0009-group-commit-in-one-call.md, addendum of 2026-12-05). An engine serving many
-- shards of a sale committed each on its own: a flash sale's 20,000 sales through 8 shards took
-- about 3,500 commits of 5–6 sales each, and a commit costs far more per call and per statement
-- than per row. The engine now commits what its shards have waiting together (ShardCommits).
--
-- p_batch is sentinel_commit_batch's document (0002) over all of the shards, with
--   fence         [{shard, epoch}]     every shard in the commit, at the epoch it holds
-- and a `shard` member on each row of created, reservations and idempotency. The engine puts a
-- customer's usage of one commit in one shard's part only (a row cannot be upserted twice in one
-- statement); the rest is sentinel_commit_batch as 0005 left it: every row found by its key,
-- versioned writes, a key's newest result kept, nothing or all.
--
-- It raises SNFEN (an epoch moved on, or a row is not at the version its shard saw) and SNLIM
-- (DETAIL as in 0002) for the commit as a whole: the engine then commits each shard's part on its
-- own, which names the shard at fault. sentinel_commit_batch stays for engines of the previous
-- release during an upgrade.
CREATE FUNCTION sentinel_commit_shards(p_event text, p_limit integer, p_topic text, p_batch jsonb)
RETURNS void
LANGUAGE plpgsql
SET enable_hashjoin = off
SET enable_mergejoin = off
SET enable_seqscan = off
AS $$
DECLARE
  expected integer;
  written integer;
  refused_customers text[];
  refused jsonb;
  ended_ids text[];
BEGIN
  expected := jsonb_array_length(p_batch->'fence');
  UPDATE shards s SET version = s.version + 1
    FROM jsonb_to_recordset(p_batch->'fence') AS f(shard integer, epoch bigint)
   WHERE s.event_id = p_event AND s.shard = f.shard AND s.epoch = f.epoch;
  GET DIAGNOSTICS written = ROW_COUNT;
  IF written <> expected THEN
    RAISE EXCEPTION USING ERRCODE = 'SNFEN',
      MESSAGE = format('event %s: %s of %s shards are no longer at the epoch of the commit', p_event, expected - written, expected);
  END IF;

  -- As in 0002: usage first, one pass in customer order, so that commits never deadlock on it.
  IF jsonb_array_length(p_batch->'usage') > 0 THEN
    WITH changes AS (
      SELECT u.customer, u.delta FROM jsonb_to_recordset(p_batch->'usage') AS u(customer text, delta integer)
    ), applied AS (
      INSERT INTO customer_usage AS c (event_id, customer, used)
      SELECT p_event, u.customer, GREATEST(u.delta, 0) FROM changes u WHERE u.delta <= p_limit ORDER BY u.customer
      ON CONFLICT (event_id, customer) DO UPDATE
        SET used = CASE WHEN excluded.used > 0 THEN c.used + excluded.used
                        ELSE GREATEST(0, c.used + (SELECT u.delta FROM changes u WHERE u.customer = excluded.customer)) END
        WHERE excluded.used = 0 OR c.used + excluded.used <= p_limit
      RETURNING c.customer
    )
    SELECT array_agg(u.customer) INTO refused_customers FROM changes u WHERE u.customer NOT IN (SELECT customer FROM applied);
    IF refused_customers IS NOT NULL THEN
      SELECT jsonb_object_agg(r.customer, COALESCE(cu.used, 0)) INTO refused
        FROM unnest(refused_customers) AS r(customer)
        LEFT JOIN customer_usage cu ON cu.event_id = p_event AND cu.customer = r.customer;
      RAISE EXCEPTION USING ERRCODE = 'SNLIM', MESSAGE = 'the customer limit refuses some holds', DETAIL = refused::text;
    END IF;
  END IF;

  expected := jsonb_array_length(p_batch->'seats');
  IF expected > 0 THEN
    UPDATE seats s SET state = v.state, hold_id = v.hold_id, version = v.to_version
      FROM jsonb_to_recordset(p_batch->'seats') AS v(seat_id text, state text, hold_id text, from_version integer, to_version integer)
     WHERE s.event_id = p_event AND s.seat_id = v.seat_id AND s.version = v.from_version;
    GET DIAGNOSTICS written = ROW_COUNT;
    PERFORM sentinel_expect_written(p_event, NULL, 'seat', expected, written);
  END IF;

  expected := jsonb_array_length(p_batch->'pools');
  IF expected > 0 THEN
    UPDATE pools p SET held = v.held, sold = v.sold, version = v.to_version
      FROM jsonb_to_recordset(p_batch->'pools') AS v(pool_id text, held integer, sold integer, from_version integer, to_version integer)
     WHERE p.event_id = p_event AND p.pool_id = v.pool_id AND p.version = v.from_version;
    GET DIAGNOSTICS written = ROW_COUNT;
    PERFORM sentinel_expect_written(p_event, NULL, 'pool', expected, written);
  END IF;

  IF jsonb_array_length(p_batch->'created') > 0 THEN
    INSERT INTO holds (hold_id, event_id, shard, customer, seats, pool_id, quantity, state, created_at, expires_at, ended_at, reservation_id)
    SELECT v.hold_id, p_event, v.shard, v.customer, v.seats, v.pool_id, v.quantity, v.state,
           to_timestamp(v.created_at / 1000.0), to_timestamp(v.expires_at / 1000.0), to_timestamp(v.ended_at / 1000.0), v.reservation_id
      FROM jsonb_to_recordset(p_batch->'created')
        AS v(hold_id text, shard integer, customer text, seats text[], pool_id text, quantity integer, state text,
             created_at float8, expires_at float8, ended_at float8, reservation_id text);
  END IF;

  expected := jsonb_array_length(p_batch->'ended');
  IF expected > 0 THEN
    -- By primary key, never through the partial index of live holds (see 0004).
    ended_ids := ARRAY(SELECT e->>'hold_id' FROM jsonb_array_elements(p_batch->'ended') AS e);
    UPDATE holds h SET state = v.state, ended_at = to_timestamp(v.ended_at / 1000.0), reservation_id = v.reservation_id
      FROM jsonb_to_recordset(p_batch->'ended') AS v(hold_id text, state text, ended_at float8, reservation_id text)
     WHERE h.hold_id = ANY (ended_ids) AND h.hold_id = v.hold_id AND h.event_id = p_event
       AND h.state IS NOT DISTINCT FROM 'live';
    GET DIAGNOSTICS written = ROW_COUNT;
    PERFORM sentinel_expect_written(p_event, NULL, 'hold', expected, written);
  END IF;

  IF jsonb_array_length(p_batch->'reservations') > 0 THEN
    INSERT INTO reservations (reservation_id, event_id, hold_id, shard, customer, seats, pool_id, quantity, confirmed_at)
    SELECT v.reservation_id, p_event, v.hold_id, v.shard, v.customer, v.seats, v.pool_id, v.quantity, to_timestamp(v.confirmed_at / 1000.0)
      FROM jsonb_to_recordset(p_batch->'reservations')
        AS v(reservation_id text, hold_id text, shard integer, customer text, seats text[], pool_id text, quantity integer, confirmed_at float8);
    INSERT INTO outbox (event_id, topic, message_key, payload)
    SELECT p_event, p_topic, v.reservation_id, v.payload
      FROM jsonb_to_recordset(p_batch->'reservations') AS v(reservation_id text, payload jsonb);
  END IF;

  IF jsonb_array_length(p_batch->'idempotency') > 0 THEN
    -- As in 0005: one row per (shard, key, customer), the newest, replacing an older one.
    INSERT INTO idempotency_keys (event_id, shard, key, customer, fingerprint, result, created_at)
    SELECT DISTINCT ON (v.shard, v.key, v.customer) p_event, v.shard, v.key, v.customer, v.fingerprint, v.result, to_timestamp(v.at / 1000.0)
      FROM jsonb_to_recordset(p_batch->'idempotency') AS v(key text, shard integer, customer text, fingerprint text, result jsonb, at float8)
     ORDER BY v.shard, v.key, v.customer, v.at DESC
    ON CONFLICT (event_id, shard, key, customer) DO UPDATE
      SET fingerprint = excluded.fingerprint, result = excluded.result, created_at = excluded.created_at
      WHERE idempotency_keys.created_at < excluded.created_at;
  END IF;
END;
$$;
