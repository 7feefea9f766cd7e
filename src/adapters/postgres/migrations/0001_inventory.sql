-- Inventory, ownership and the outbox. Every mutable row carries a version: writes are
-- "UPDATE ... SET version = version + 1 WHERE version = $seen", never blind overwrites.

CREATE TABLE events (
  id              text PRIMARY KEY,
  display_name    text NOT NULL,
  layout          jsonb NOT NULL,
  layout_hash     text NOT NULL,
  shard_count     integer NOT NULL CHECK (shard_count >= 1),
  hold_ttl_ms     integer NOT NULL CHECK (hold_ttl_ms > 0),
  customer_limit  integer NOT NULL CHECK (customer_limit >= 1),
  admission_rate  integer NOT NULL CHECK (admission_rate >= 1),
  sale_opens_at   timestamptz NOT NULL,
  sale_closes_at  timestamptz NOT NULL,
  -- provisioned -> on_sale (derived from the window unless closed) -> closed -> archived
  status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed', 'archived')),
  version         bigint NOT NULL DEFAULT 1,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  CHECK (sale_closes_at > sale_opens_at)
);

-- One row per shard. `epoch` is the fencing token: every claim bumps it, every commit checks it.
CREATE TABLE shards (
  event_id    text NOT NULL REFERENCES events (id),
  shard       integer NOT NULL CHECK (shard >= 0),
  epoch       bigint NOT NULL DEFAULT 0,
  owner       text,
  claimed_at  timestamptz,
  version     bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (event_id, shard)
);

CREATE TABLE seats (
  event_id  text NOT NULL REFERENCES events (id),
  seat_id   text NOT NULL,
  shard     integer NOT NULL,
  section   text NOT NULL,
  row_id    text NOT NULL,
  number    integer NOT NULL,
  state     text NOT NULL DEFAULT 'available' CHECK (state IN ('available', 'held', 'sold')),
  hold_id   text,
  version   integer NOT NULL DEFAULT 0,
  PRIMARY KEY (event_id, seat_id),
  CHECK ((state = 'available') = (hold_id IS NULL))
);
CREATE INDEX seats_by_shard ON seats (event_id, shard);

CREATE TABLE pools (
  event_id  text NOT NULL REFERENCES events (id),
  pool_id   text NOT NULL,
  shard     integer NOT NULL,
  capacity  integer NOT NULL CHECK (capacity > 0),
  held      integer NOT NULL DEFAULT 0 CHECK (held >= 0),
  sold      integer NOT NULL DEFAULT 0 CHECK (sold >= 0),
  version   integer NOT NULL DEFAULT 0,
  PRIMARY KEY (event_id, pool_id),
  CHECK (held + sold <= capacity)
);

CREATE TABLE holds (
  hold_id         text PRIMARY KEY,
  event_id        text NOT NULL REFERENCES events (id),
  shard           integer NOT NULL,
  customer        text NOT NULL,
  seats           text[] NOT NULL DEFAULT '{}',
  pool_id         text,
  quantity        integer NOT NULL CHECK (quantity > 0),
  state           text NOT NULL DEFAULT 'live' CHECK (state IN ('live', 'confirmed', 'released', 'expired')),
  created_at      timestamptz NOT NULL,
  expires_at      timestamptz NOT NULL,
  ended_at        timestamptz,
  reservation_id  text
);
CREATE INDEX holds_live_by_shard ON holds (event_id, shard) WHERE state = 'live';

CREATE TABLE reservations (
  reservation_id  text PRIMARY KEY,
  event_id        text NOT NULL REFERENCES events (id),
  hold_id         text NOT NULL UNIQUE REFERENCES holds (hold_id),
  shard           integer NOT NULL,
  customer        text NOT NULL,
  seats           text[] NOT NULL DEFAULT '{}',
  pool_id         text,
  quantity        integer NOT NULL CHECK (quantity > 0),
  confirmed_at    timestamptz NOT NULL,
  archived_at     timestamptz
);
CREATE INDEX reservations_by_customer ON reservations (event_id, customer);

-- Event-wide per-customer usage (seats held or sold), checked in the commit so limits hold
-- across shards.
CREATE TABLE customer_usage (
  event_id  text NOT NULL REFERENCES events (id),
  customer  text NOT NULL,
  used      integer NOT NULL DEFAULT 0 CHECK (used >= 0),
  PRIMARY KEY (event_id, customer)
);

-- Shard-level command idempotency: the first successful result of a key, replayed on retries.
CREATE TABLE idempotency_keys (
  event_id     text NOT NULL REFERENCES events (id),
  shard        integer NOT NULL,
  key          text NOT NULL,
  customer     text NOT NULL,
  fingerprint  text NOT NULL,
  result       jsonb NOT NULL,
  created_at   timestamptz NOT NULL,
  PRIMARY KEY (event_id, shard, key)
);

-- Transactional outbox: written in the same transaction as the reservation, published by the relay.
CREATE TABLE outbox (
  id            bigserial PRIMARY KEY,
  event_id      text NOT NULL,
  topic         text NOT NULL,
  message_key   text NOT NULL,
  payload       jsonb NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  published_at  timestamptz,
  attempts      integer NOT NULL DEFAULT 0,
  last_error    text
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
