-- Each seat sold once, held to by Postgres itself. Until now the one-sale-per-seat invariant rested
-- on the engine: a seat's versioned write refuses a writer that did not see its last change, but a
-- seat written sold again from the version it is at — an engine whose memory wrongly thought it
-- free — went through, and a second reservation named it. Every reserved seat now gets a row
-- here, keyed by (event, seat), from the reservations a statement inserts (one statement-level
-- trigger per commit, not one per row): a second reservation of a seat fails its commit as a whole
-- — the shard stops and is rebuilt from what Postgres holds — instead of selling the seat twice.
-- Creating the trigger locks out reservation inserts only for this short step; the rows of the
-- reservations made before it are added by the next step (0013), without that lock.
CREATE TABLE reservation_seats (
  event_id        text NOT NULL,
  seat_id         text NOT NULL,
  reservation_id  text NOT NULL,
  PRIMARY KEY (event_id, seat_id)
);

CREATE FUNCTION sentinel_reservation_seats() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO reservation_seats (event_id, seat_id, reservation_id)
    SELECT r.event_id, s.seat_id, r.reservation_id FROM added AS r CROSS JOIN LATERAL unnest(r.seats) AS s (seat_id);
  RETURN NULL;
END
$$;

CREATE TRIGGER reservations_sell_each_seat_once AFTER INSERT ON reservations
  REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION sentinel_reservation_seats();
