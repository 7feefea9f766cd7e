-- sentinel:no-transaction
-- The rows of reservation_seats (0012) for the reservations made before its trigger: one
-- statement, outside the trigger's step, so it holds up no commit however many reservations there
-- are (it reads reservations, and writes reservation_seats rows no commit of a new sale writes).
-- Until it is done, a seat reserved before 0012 is not yet guarded by Postgres. A seat already
-- sold twice keeps one row — that of its first reservation by id, or of one made since 0012 —
-- and the step does not fail on such history; `sentinel verify` reports it. Safe to run again.
INSERT INTO reservation_seats (event_id, seat_id, reservation_id)
  SELECT r.event_id, s.seat_id, r.reservation_id FROM reservations AS r CROSS JOIN LATERAL unnest(r.seats) AS s (seat_id)
  ORDER BY r.reservation_id
  ON CONFLICT (event_id, seat_id) DO NOTHING;
