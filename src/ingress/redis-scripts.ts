/**
 * The ingress's two Redis scripts. Each runs atomically on the Redis server, so every ingress
 * replica sees one order of events.
 *
 * `begin` decides, in one round trip, what a command request may do: replay a stored response,
 * refuse a reused or in-flight Idempotency-Key, refuse admission (GCRA, see admission.ts), or claim
 * the key and go ahead. Replays and refusals of the key do not consume admission.
 *
 * A request the ingress can refuse without a shard (a seat known sold) only looks at its key — it
 * must still replay the stored success of an earlier request with the same key — with a plain
 * HMGET of the same fields (`CommandGate.peek`): no claim, no admission.
 *
 * `finish` stores the response of a claimed key (success) or gives the key back (anything else),
 * but only while the claim is still ours (its token matches).
 *
 * Keys: KEYS[1] the idempotency record (a hash: s = state i|d, f = fingerprint, t = claim token,
 * r = stored response), KEYS[2] the event's admission TAT (integer microseconds). Both share the
 * event's hash tag, so the scripts also run on Redis Cluster.
 */

import type { Redis } from 'ioredis';

export const BEGIN_SCRIPT = `
local rec = redis.call('HMGET', KEYS[1], 's', 'f', 'r')
if rec[1] then
  if rec[2] ~= ARGV[1] then return {'mismatch'} end
  if rec[1] == 'd' then return {'replay', rec[3]} end
  return {'in-flight', redis.call('PTTL', KEYS[1])}
end
if ARGV[4] == '1' then
  local now
  if ARGV[7] ~= '' then
    now = tonumber(ARGV[7])
  else
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  end
  local interval = tonumber(ARGV[5])
  local burst = tonumber(ARGV[6])
  local tat = tonumber(redis.call('GET', KEYS[2]) or '0')
  if tat < now then tat = now end
  local newTat = tat + interval
  local limit = now + burst * interval
  if newTat > limit then return {'limited', newTat - limit} end
  -- The TAT only matters until it passes; a second more costs nothing and keeps it from expiring
  -- between two requests that Redis's clock and the caller's clock see a little differently.
  redis.call('SET', KEYS[2], string.format('%.0f', newTat), 'PX', math.floor((newTat - now) / 1000) + 1000)
end
redis.call('HSET', KEYS[1], 's', 'i', 'f', ARGV[1], 't', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {'claimed'}
`;

export const FINISH_SCRIPT = `
if redis.call('HGET', KEYS[1], 't') ~= ARGV[1] then return 0 end
if ARGV[2] == 'store' then
  redis.call('HSET', KEYS[1], 's', 'd', 'r', ARGV[3])
  redis.call('EXPIRE', KEYS[1], ARGV[4])
else
  redis.call('DEL', KEYS[1])
end
return 1
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
