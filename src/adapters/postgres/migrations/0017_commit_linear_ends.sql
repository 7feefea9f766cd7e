-- A commit's cost grows with its rows again, not with their square (ADR 0009, addendum of
-- 2026-12-05). Two statements of both commit functions, sentinel_commit_batch (its body in 0005)
-- and sentinel_commit_shards (0010), matched each row of a table against every row of the batch:
--   * the statement ending holds read the holds by `hold_id = ANY (ended_ids)` (0004) — and, hash
--     and merge joins being off (0003), joined them to the batch's jsonb_to_recordset in a nested
--     loop with the holds outside: the batch was read again for every hold (EXPLAIN ANALYZE of a
--     commit ending 2,500 holds: 6,247,500 rows removed by the join filter, 1.1 s);
--   * the usage upsert found a shrinking customer's delta with a subquery over the batch's usage
--     rows, `(SELECT u.delta FROM changes u WHERE u.customer = excluded.customer)`: a scan of all
--     of them per customer whose usage shrinks.
-- Small commits never noticed. A commit ending thousands of holds — those that came due while a
-- shard had no owner, ended in one commit when it is claimed — ran past the statement timeout
-- (10 s, the engine pool's), and the shard stopped, was claimed again and failed the same way for
-- good: its holds outlived their TTL, its customers' usage stayed counted.
--
-- Now neither statement joins the batch to a table:
--   * the holds to end are read by their primary keys only (`hold_id = ANY (ended_ids)`, as since
--     0004), and each one's new state is looked up by its key in a jsonb object of the batch's
--     rows (`ended_rows -> h.hold_id`: a binary search among its keys), built once;
--   * a shrinking customer's delta is looked up the same way, in an object of the batch's usage
--     deltas by customer that the statement builds once (`deltas`, an InitPlan).
-- Everything else — arguments, the batch document, the order rows are locked in, the errors it
-- raises (SNFEN, SNLIM and its DETAIL, SNVER through sentinel_expect_written) — is unchanged, so
-- an engine of the previous release works against it. The engine also no longer puts more than
-- one expired hold in a commit entry, so such commits stay within SENTINEL_BATCH_MAX holds.
--
-- Measured on a private Postgres 15 of the 2-core development VM: one commit ending N holds of 4
-- seats each, of N customers, each function three times in a transaction rolled back (the two
-- functions alike; the ranges span two databases, with and without statistics of the new holds):
--   holds ended     1      10     100      512       1,024       2,500        5,000      7,500
--   before        1 ms    1 ms   6-9 ms  45-81 ms  120-254 ms  0.51-1.30 s  1.7-4.9 s  10.3-10.8 s
--   after         1 ms    1 ms   5-8 ms  29-33 ms   64-74 ms   0.15-0.24 s  0.30-0.36 s  0.44-1.0 s
-- (before, 7,500 ran past the engine pool's 10 s statement timeout). The sale's own commits, a few
-- holds at a time, cost no more (six interleaved runs of 200 commits each on the VM, loaded by
-- other work; the median of the runs' medians, sentinel_commit_batch, the other alike):
--   holds per commit          1             10            100
--   made       before/after   0.81/0.83 ms  1.49/1.34 ms  6.73/6.13 ms
--   released   before/after   0.89/0.87 ms  1.52/1.31 ms  8.29/6.05 ms (the square showed already)
-- Each changed statement's plan (EXPLAIN ANALYZE, auto_explain) reads the rows it did: the holds by
-- their primary key (an index scan of `hold_id = ANY`, a bitmap scan for more), the usage rows by
-- theirs; the object of deltas is built only by a commit that shrinks someone's usage (an
-- InitPlan, never executed in a commit of new holds).
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
  ended_rows jsonb;
BEGIN
  UPDATE shards SET version = version + 1 WHERE event_id = p_event AND shard = p_shard AND epoch = p_epoch;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'SNFEN', MESSAGE = format('shard %s/%s: epoch %s is no longer current', p_event, p_shard, p_epoch);
  END IF;

  -- Usage first. Every shard writes these rows, so every commit locks them in one pass in customer
  -- order: two commits can wait for each other but never deadlock (ON CONFLICT DO UPDATE locks a
  -- row even when its WHERE refuses the update). Growth applies only within the limit; shrinking
  -- always applies. A new row is inserted with the growth; for a shrink, excluded.used is 0, and
  -- the customer's delta is looked up by key in `deltas` (a subquery over the batch per row made
  -- this statement quadratic: see the header).
  IF jsonb_array_length(p_batch->'usage') > 0 THEN
    WITH changes AS (
      SELECT u.customer, u.delta FROM jsonb_to_recordset(p_batch->'usage') AS u(customer text, delta integer)
    ), deltas AS (
      SELECT jsonb_object_agg(u.customer, u.delta) AS by_customer FROM changes u
    ), applied AS (
      INSERT INTO customer_usage AS c (event_id, customer, used)
      SELECT p_event, u.customer, GREATEST(u.delta, 0) FROM changes u WHERE u.delta <= p_limit ORDER BY u.customer
      ON CONFLICT (event_id, customer) DO UPDATE
        SET used = CASE WHEN excluded.used > 0 THEN c.used + excluded.used
                        ELSE GREATEST(0, c.used + ((SELECT d.by_customer FROM deltas d)->>excluded.customer)::integer) END
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
    -- Each hold by its primary key, the batch's keys given to the planner as an array (0004: not
    -- through the partial index of live holds, whose statistics taken before the sale promise next
    -- to nothing; `IS NOT DISTINCT FROM` means `=` for this NOT NULL column without letting the
    -- planner prove that index's predicate). No join with the batch: each hold's new state is
    -- looked up by its key in `ended_rows` — joined, the batch was read again for every hold.
    SELECT array_agg(e->>'hold_id'), jsonb_object_agg(e->>'hold_id', e) INTO ended_ids, ended_rows
      FROM jsonb_array_elements(p_batch->'ended') AS e;
    UPDATE holds h SET state = ended_rows->h.hold_id->>'state',
                       ended_at = to_timestamp((ended_rows->h.hold_id->>'ended_at')::float8 / 1000.0),
                       reservation_id = ended_rows->h.hold_id->>'reservation_id'
     WHERE h.hold_id = ANY (ended_ids) AND h.event_id = p_event
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

-- 0010's body with the same two statements changed.
CREATE OR REPLACE FUNCTION sentinel_commit_shards(p_event text, p_limit integer, p_topic text, p_batch jsonb)
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
  ended_rows jsonb;
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

  -- As in sentinel_commit_batch: usage first, one pass in customer order, so that commits never
  -- deadlock on it; a shrinking customer's delta looked up by key.
  IF jsonb_array_length(p_batch->'usage') > 0 THEN
    WITH changes AS (
      SELECT u.customer, u.delta FROM jsonb_to_recordset(p_batch->'usage') AS u(customer text, delta integer)
    ), deltas AS (
      SELECT jsonb_object_agg(u.customer, u.delta) AS by_customer FROM changes u
    ), applied AS (
      INSERT INTO customer_usage AS c (event_id, customer, used)
      SELECT p_event, u.customer, GREATEST(u.delta, 0) FROM changes u WHERE u.delta <= p_limit ORDER BY u.customer
      ON CONFLICT (event_id, customer) DO UPDATE
        SET used = CASE WHEN excluded.used > 0 THEN c.used + excluded.used
                        ELSE GREATEST(0, c.used + ((SELECT d.by_customer FROM deltas d)->>excluded.customer)::integer) END
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
    -- By primary key, never through the partial index of live holds (see 0004); each hold's new
    -- state by its key in `ended_rows`, not by a join with the batch.
    SELECT array_agg(e->>'hold_id'), jsonb_object_agg(e->>'hold_id', e) INTO ended_ids, ended_rows
      FROM jsonb_array_elements(p_batch->'ended') AS e;
    UPDATE holds h SET state = ended_rows->h.hold_id->>'state',
                       ended_at = to_timestamp((ended_rows->h.hold_id->>'ended_at')::float8 / 1000.0),
                       reservation_id = ended_rows->h.hold_id->>'reservation_id'
     WHERE h.hold_id = ANY (ended_ids) AND h.event_id = p_event
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
