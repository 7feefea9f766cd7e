-- Shard idempotency records are scoped by customer, and a newer result of a key replaces an older
-- one (ADR 0006, decision 9). A shard remembers results per (customer, key) and writes a record only
-- when it decided the key afresh — when it had no record of it in memory, because none existed or
-- it had aged out of the idempotency window. Until this migration the table was keyed by
-- (event, shard, key) and the commit did ON CONFLICT DO NOTHING, so
--   * a key reused after the window (a client's Idempotency-Key reused a day later) kept its old
--     row, and the new success was never saved: after a take-over its retry was decided again —
--     a second hold, or a 409 for a seat the buyer had just bought;
--   * two customers sending the same raw key to one shard kept only the first one's record.
-- The function is 0004's with that one statement changed.
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (event_id, shard, key, customer);

CREATE OR REPLACE FUNCTION sentinel_commit_batch(p_event text, p_shard integer, p_epoch bigint, p_limit integer, p_topic text, p_batch jsonb)
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
  UPDATE shards SET version = version + 1 WHERE event_id = p_event AND shard = p_shard AND epoch = p_epoch;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'SNFEN', MESSAGE = format('shard %s/%s: epoch %s is no longer current', p_event, p_shard, p_epoch);
  END IF;

  -- Usage first. Every shard writes these rows, so every commit locks them in one pass in customer
  -- order: two commits can wait for each other but never deadlock (ON CONFLICT DO UPDATE locks a
  -- row even when its WHERE refuses the update). Growth applies only within the limit; shrinking
  -- always applies. A new row is inserted with the growth; for a shrink, excluded.used is 0.
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
      -- Read in a statement of its own, so it sees the usage that refused them.
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
    PERFORM sentinel_expect_written(p_event, p_shard, 'seat', expected, written);
  END IF;

  expected := jsonb_array_length(p_batch->'pools');
  IF expected > 0 THEN
    UPDATE pools p SET held = v.held, sold = v.sold, version = v.to_version
      FROM jsonb_to_recordset(p_batch->'pools') AS v(pool_id text, held integer, sold integer, from_version integer, to_version integer)
     WHERE p.event_id = p_event AND p.pool_id = v.pool_id AND p.version = v.from_version;
    GET DIAGNOSTICS written = ROW_COUNT;
    PERFORM sentinel_expect_written(p_event, p_shard, 'pool', expected, written);
  END IF;

  IF jsonb_array_length(p_batch->'created') > 0 THEN
    INSERT INTO holds (hold_id, event_id, shard, customer, seats, pool_id, quantity, state, created_at, expires_at, ended_at, reservation_id)
    SELECT v.hold_id, p_event, p_shard, v.customer, v.seats, v.pool_id, v.quantity, v.state,
           to_timestamp(v.created_at / 1000.0), to_timestamp(v.expires_at / 1000.0), to_timestamp(v.ended_at / 1000.0), v.reservation_id
      FROM jsonb_to_recordset(p_batch->'created')
        AS v(hold_id text, customer text, seats text[], pool_id text, quantity integer, state text,
             created_at float8, expires_at float8, ended_at float8, reservation_id text);
  END IF;

  expected := jsonb_array_length(p_batch->'ended');
  IF expected > 0 THEN
    -- Each hold by its primary key, the batch's keys given to the planner as an array. Joined to
    -- the batch alone and filtered by `state = 'live'`, the holds were read through the partial
    -- index of live holds, which statistics taken before the sale say holds next to nothing for
    -- this event: every commit that ended a hold read all of the event's live holds. `IS NOT
    -- DISTINCT FROM` means the same as `=` for this NOT NULL column and does not let the planner
    -- prove the partial index's predicate, so that index is not a candidate.
    ended_ids := ARRAY(SELECT e->>'hold_id' FROM jsonb_array_elements(p_batch->'ended') AS e);
    UPDATE holds h SET state = v.state, ended_at = to_timestamp(v.ended_at / 1000.0), reservation_id = v.reservation_id
      FROM jsonb_to_recordset(p_batch->'ended') AS v(hold_id text, state text, ended_at float8, reservation_id text)
     WHERE h.hold_id = ANY (ended_ids) AND h.hold_id = v.hold_id AND h.event_id = p_event
       AND h.state IS NOT DISTINCT FROM 'live';
    GET DIAGNOSTICS written = ROW_COUNT;
    PERFORM sentinel_expect_written(p_event, p_shard, 'hold', expected, written);
  END IF;

  IF jsonb_array_length(p_batch->'reservations') > 0 THEN
    INSERT INTO reservations (reservation_id, event_id, hold_id, shard, customer, seats, pool_id, quantity, confirmed_at)
    SELECT v.reservation_id, p_event, v.hold_id, p_shard, v.customer, v.seats, v.pool_id, v.quantity, to_timestamp(v.confirmed_at / 1000.0)
      FROM jsonb_to_recordset(p_batch->'reservations')
        AS v(reservation_id text, hold_id text, customer text, seats text[], pool_id text, quantity integer, confirmed_at float8);
    INSERT INTO outbox (event_id, topic, message_key, payload)
    SELECT p_event, p_topic, v.reservation_id, v.payload
      FROM jsonb_to_recordset(p_batch->'reservations') AS v(reservation_id text, payload jsonb);
  END IF;

  IF jsonb_array_length(p_batch->'idempotency') > 0 THEN
    INSERT INTO idempotency_keys (event_id, shard, key, customer, fingerprint, result, created_at)
    -- One row per (key, customer) and batch, the newest: an INSERT … ON CONFLICT DO UPDATE may not
    -- touch a row twice.
    SELECT DISTINCT ON (v.key, v.customer) p_event, p_shard, v.key, v.customer, v.fingerprint, v.result, to_timestamp(v.at / 1000.0)
      FROM jsonb_to_recordset(p_batch->'idempotency') AS v(key text, customer text, fingerprint text, result jsonb, at float8)
     ORDER BY v.key, v.customer, v.at DESC
    ON CONFLICT (event_id, shard, key, customer) DO UPDATE
      SET fingerprint = excluded.fingerprint, result = excluded.result, created_at = excluded.created_at
      WHERE idempotency_keys.created_at < excluded.created_at;
  END IF;
END;
$$;
