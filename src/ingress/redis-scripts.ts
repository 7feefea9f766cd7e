/**
 * The ingress's two Redis scripts. Each runs atomically on the Redis server, so every ingress
 * replica sees one order of events. Each takes a batch: the requests of one event that one ingress
 * process received in one turn of its event loop (see CommandGate), decided in order as if one by
 * one — one round trip and one script run for all of them.
 *
 * `begin` decides, per request, what a command request may do: replay a stored response, refuse a
 * reused or in-flight Idempotency-Key, refuse admission (GCRA, see admission.ts), or claim the key
 * and go ahead — saying, with the claim, whether the key's outcome was ever unknown (an earlier
 * request under it may have been carried out by a shard; a key never used cannot have been). Replays and refusals of the key do not consume admission. Running it twice for the
 * same request (same claim token) answers the same: ioredis resends a command whose reply was lost
 * with the connection, and a request must not find its own claim "in flight" nor pay admission twice.
 *
 * A request the ingress can refuse without a shard (a seat known sold, a closed sale) only looks
 * at its key — it must still replay the stored success of an earlier request with the same key —
 * in the same script and batch, as a request whose admit argument is `peek`: the key is read as
 * for any other request, but an unused key is answered `free`, with no claim and no admission
 * (`CommandGate.peek`). It writes nothing: binding the key to the refused request, as `finish`
 * does after a refusal under a claim, would cost a write per loser of a sale — it doubled Redis's
 * CPU per request in `npm run bench:ingress`'s hot seat (ADR 0004).
 *
 * `finish` stores the response of a claimed key (success), gives the key back *refused* (nothing
 * was done under it: the same request may use it again, as if new, and another request is a
 * mismatch — a key stays bound to its first request for the record's TTL), or marks it *unknown*
 * (no answer came, yet a shard may have carried the command out) — but only while the claim is
 * still ours (its token matches). An unknown key is not free: a peek answers `unknown`, so the
 * ingress refuses nothing under it without asking the shard (which replays a success it
 * remembers); a request claims it as it would a free key. And it stays unknown: a refusal of a later request under it gives it back unknown, not free, since
 * the first request's command may still reach a shard after that refusal (held in a reconnecting
 * NATS client's buffer, or sent through another ingress) — only a stored success ends it.
 *
 * A claim has a deadline (the in-flight TTL), and its record outlives it: a claim never finished
 * — its ingress died mid-request, and a shard may have carried the command out — is unknown
 * once its deadline passed, not free.
 *
 * Keys: an idempotency record is a hash (s = state i|d|u|r: in flight, done, outcome unknown,
 * refused;
 * f = fingerprint, t = claim token, e = claim deadline (epoch ms, Redis's clock), u = 1 once its
 * outcome was unknown,
 * r = stored response); the event's admission TAT is an integer of microseconds. All of an event's
 * keys share its hash tag, so the scripts also run on Redis Cluster.
 */

import type { Redis } from 'ioredis';

/**
 * KEYS[1] the event's admission TAT, KEYS[1 + i] request i's record. ARGV, 8 per request:
 * fingerprint, claim token, in-flight TTL (ms), admit (1|0|peek), emission interval (µs), burst,
 * now for admission (µs; empty: the Redis server's clock — claim deadlines always use it), and
 * the record's TTL (s). Answers one reply per request.
 */
export const BEGIN_SCRIPT = `
local replies = {}
local clock
local tat
local tatNow
-- The Redis server's clock (µs), read once per run.
local function serverNow()
  if not clock then
    local t = redis.call('TIME')
    clock = tonumber(t[1]) * 1000000 + tonumber(t[2])
  end
  return clock
end
for i = 2, #KEYS do
  local a = (i - 2) * 8
  local key = KEYS[i]
  local rec = redis.call('HMGET', key, 's', 'f', 'r', 't', 'e', 'u')
  local state = rec[1]
  -- A claim past its deadline: its request ended without finishing it (its ingress died), and a
  -- shard may have carried its command out. Unknown, as if it had been marked so.
  if state == 'i' and rec[5] and tonumber(rec[5]) <= serverNow() / 1000 then state = 'u' end
  local reply
  if state then
    if rec[2] ~= ARGV[a + 1] then reply = {'mismatch'}
    elseif state == 'd' then reply = {'replay', rec[3]}
    -- Refused before: bound to its request (another is a mismatch, above), which is decided afresh.
    elseif state == 'r' then reply = nil
    -- Sent to a shard before, outcome unknown: a peek must not take it for free; a request claims
    -- it like a free key and asks the shard.
    elseif state == 'u' then
      if ARGV[a + 4] == 'peek' then reply = {'unknown'} end
    -- This very request's claim: the script ran before and its reply was lost (the client resends
    -- a command unanswered when the connection dropped). Claimed again, admitted once.
    elseif rec[4] == ARGV[a + 2] and ARGV[a + 2] ~= '' then
      if rec[6] then reply = {'claimed', 'unknown'} else reply = {'claimed'} end
    elseif rec[5] then reply = {'in-flight', tonumber(rec[5]) - math.floor(serverNow() / 1000)}
    else reply = {'in-flight', redis.call('PTTL', key)} end
  end
  if reply then
    -- the record decided
  elseif ARGV[a + 4] == 'peek' then
    reply = {'free'}
  elseif ARGV[a + 4] == '1' then
    local now
    if ARGV[a + 7] ~= '' then now = tonumber(ARGV[a + 7]) else now = serverNow() end
    local interval = tonumber(ARGV[a + 5])
    local burst = tonumber(ARGV[a + 6])
    if not tat then tat = tonumber(redis.call('GET', KEYS[1]) or '0') end
    local newTat = math.max(tat, now) + interval
    local limit = now + burst * interval
    if newTat > limit then
      reply = {'limited', newTat - limit}
    else
      tat = newTat
      tatNow = now
    end
  end
  if not reply then
    -- Claimed until its deadline; the record outlives it, so that a claim never finished (its
    -- ingress died) turns unknown rather than free.
    if state == 'u' then redis.call('HSET', key, 'u', '1') end
    local deadline = string.format('%.0f', math.floor(serverNow() / 1000) + tonumber(ARGV[a + 3]))
    redis.call('HSET', key, 's', 'i', 'f', ARGV[a + 1], 't', ARGV[a + 2], 'e', deadline)
    redis.call('EXPIRE', key, ARGV[a + 8])
    -- Said to the claimer: an earlier request under the key may have been carried out.
    if state == 'u' or rec[6] then reply = {'claimed', 'unknown'} else reply = {'claimed'} end
  end
  replies[i - 1] = reply
end
if tatNow then
  -- The TAT only matters until it passes; a second more costs nothing and keeps it from expiring
  -- between two requests that Redis's clock and the caller's clock see a little differently.
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.floor((tat - tatNow) / 1000) + 1000)
end
return replies
`;

/**
 * KEYS[i] record i. ARGV, 4 per record: claim token, 'store', 'unknown' or 'release', the
 * response to store, the record's TTL (s). A release of a record whose outcome was once unknown
 * marks it unknown again. Answers, per record, 1 if the claim was still ours (and was finished),
 * else 0.
 */
export const FINISH_SCRIPT = `
local done = {}
for i = 1, #KEYS do
  local a = (i - 1) * 4
  if redis.call('HGET', KEYS[i], 't') ~= ARGV[a + 1] then
    done[i] = 0
  elseif ARGV[a + 2] == 'store' then
    redis.call('HSET', KEYS[i], 's', 'd', 'r', ARGV[a + 3])
    redis.call('EXPIRE', KEYS[i], ARGV[a + 4])
    done[i] = 1
  elseif ARGV[a + 2] == 'unknown' or redis.call('HGET', KEYS[i], 'u') then
    redis.call('HSET', KEYS[i], 's', 'u')
    redis.call('HDEL', KEYS[i], 't', 'e')
    redis.call('EXPIRE', KEYS[i], ARGV[a + 4])
    done[i] = 1
  else
    redis.call('HSET', KEYS[i], 's', 'r')
    redis.call('HDEL', KEYS[i], 't', 'e')
    redis.call('EXPIRE', KEYS[i], ARGV[a + 4])
    done[i] = 1
  end
end
return done
`;

/** The Redis keys of one event. The `{event}` hash tag keeps an event's keys in one cluster slot. */
export const redisKeys = {
  idempotency: (eventId: string, digest: string) => `sentinel:{${eventId}}:idem:${digest}`,
  admission: (eventId: string) => `sentinel:{${eventId}}:admission`,
};

/** Deletes every Redis key of an event (its idempotency records and admission state); returns how many. */
export async function forgetEventKeys(redis: Redis, eventId: string): Promise<number> {
  let deleted = 0;
  const pattern = `sentinel:{${eventId.replace(/[*?[\]\\]/g, '\\$&')}}:*`;
  for await (const keys of redis.scanStream({ match: pattern, count: 1000 }) as AsyncIterable<string[]>) {
    if (keys.length > 0) deleted += await redis.unlink(...keys);
  }
  return deleted;
}
