-- A group commit joins a batch of a few rows to large tables by key (the seats, pools and holds it
-- writes). jsonb_to_recordset tells the planner nothing about a batch's size; it plans for a
-- hundred rows, and for any event whose seats cost less to hash than a hundred index lookups —
-- one of up to about ten thousand seats — it read and hashed all of the event's seats on every
-- commit (a sequential or bitmap scan: about 2 ms of Postgres CPU per commit for 3,000 seats,
-- whatever the batch size). Nested loops over the keys are the right plan for every batch this
-- function is given, so it is planned with them only (docs/adr/0009-group-commit-in-one-call.md).
ALTER FUNCTION sentinel_commit_batch(text, integer, bigint, integer, text, jsonb)
  SET enable_hashjoin = off
  SET enable_mergejoin = off;
