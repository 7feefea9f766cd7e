-- A shard's group commit as one statement: one round trip and one implicit transaction instead of
-- BEGIN, a statement per table and COMMIT (see docs/adr/0009-group-commit-in-one-call.md).
--
-- p_batch is the batch's net changes as one JSON document (InventoryStore.commitBatch builds it):
--   usage         [{customer, delta}]  net seats/places held or sold per customer, none zero
--   seats         [{seat_id, state, hold_id, from_version, to_version}]
--   pools         [{pool_id, held, sold, from_version, to_version}]
--   created       [{hold_id, customer, seats, pool_id, quantity, state, created_at, expires_at, ended_at, reservation_id}]
--   ended         [{hold_id, state, ended_at, reservation_id}]  holds created by earlier commits
--   reservations  [{reservation_id, hold_id, customer, seats, pool_id, quantity, confirmed_at, payload}]
--   idempotency   [{key, customer, fingerprint, result, at}]
-- Times are epoch milliseconds.
--
-- Either everything is written or nothing is; it raises
--   SNFEN  fenced: the epoch moved on, or a seat, pool or hold is not at the version the shard saw
--   SNLIM  the event-wide customer limit refuses some customers' growth; DETAIL is a JSON object
--          of those customers' current usage. The caller takes their new holds out and calls again.
-- A versioned write matched fewer rows than the batch changed: someone else wrote one of them.
CREATE FUNCTION sentinel_expect_written(p_event text, p_shard integer, p_what text, p_expected integer, p_written integer)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
  IF p_written <> p_expected THEN
    RAISE EXCEPTION USING ERRCODE = 'SNFEN',
      MESSAGE = format('shard %s/%s: a %s changed underneath (%s of %s versioned writes matched)', p_event, p_shard, p_what, p_written, p_expected);
  END IF;
END;
$$;

CREATE FUNCTION sentinel_commit_batch(p_event text, p_shard integer, p_epoch bigint, p_limit integer, p_topic text, p_batch jsonb)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
  expected integer;
  written integer;
  refused_customers text[];
  refused jsonb;
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
    UPDATE holds h SET state = v.state, ended_at = to_timestamp(v.ended_at / 1000.0), reservation_id = v.reservation_id
      FROM jsonb_to_recordset(p_batch->'ended') AS v(hold_id text, state text, ended_at float8, reservation_id text)
     WHERE h.event_id = p_event AND h.hold_id = v.hold_id AND h.state = 'live';
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
    SELECT p_event, p_shard, v.key, v.customer, v.fingerprint, v.result, to_timestamp(v.at / 1000.0)
      FROM jsonb_to_recordset(p_batch->'idempotency') AS v(key text, customer text, fingerprint text, result jsonb, at float8)
    ON CONFLICT DO NOTHING;
  END IF;
END;
$$;
