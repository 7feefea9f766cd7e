import t from 'tap';
import { canonicalJson, keyDigest, parseIdempotencyKey, requestFingerprint } from '../../../src/ingress/command-gate.js';
import { redisKeys } from '../../../src/ingress/redis-scripts.js';

t.test('canonical JSON ignores member order but not values', async (t) => {
  t.equal(canonicalJson({ b: 1, a: [2, { d: 1, c: null }] }), '{"a":[2,{"c":null,"d":1}],"b":1}');
  t.equal(canonicalJson({ a: 1, b: undefined }), '{"a":1}');
  t.not(canonicalJson({ seats: ['A-1-1', 'A-1-2'] }), canonicalJson({ seats: ['A-1-2', 'A-1-1'] }), 'seat order is part of the request');
});

t.test('fingerprints: same request alike, any difference apart; no body equals an empty one', async (t) => {
  const f = (method: string, path: string, body: unknown) => requestFingerprint(method, path, body);
  t.equal(f('POST', '/v1/events/e/holds', { section: 'A', quantity: 2 }), f('POST', '/v1/events/e/holds', { quantity: 2, section: 'A' }));
  t.not(f('POST', '/v1/events/e/holds', { section: 'A', quantity: 2 }), f('POST', '/v1/events/e/holds', { section: 'A', quantity: 3 }));
  t.not(f('POST', '/v1/events/e/seats/A-1-1/reserve', undefined), f('POST', '/v1/events/e/seats/A-1-2/reserve', undefined));
  t.not(f('POST', '/v1/events/e1/seats/A-1-1/reserve', undefined), f('POST', '/v1/events/e2/seats/A-1-1/reserve', undefined));
  t.equal(f('POST', '/x', undefined), f('POST', '/x', {}));
});

t.test('key digests are per customer and cannot collide by concatenation', async (t) => {
  t.not(keyDigest('alice', 'k1'), keyDigest('bob', 'k1'));
  t.not(keyDigest('ab', 'c'), keyDigest('a', 'bc'));
  t.equal(keyDigest('alice', 'k1'), keyDigest('alice', 'k1'));
  t.match(keyDigest('alice', 'k1'), /^[A-Za-z0-9_-]{43}$/);
});

t.test('Idempotency-Key header: visible ASCII, 1-255, structured-field quotes accepted', async (t) => {
  t.equal(parseIdempotencyKey('8e03978e-40d5-43e8-bc93-6894a57f9324'), '8e03978e-40d5-43e8-bc93-6894a57f9324');
  t.equal(parseIdempotencyKey('"abc"'), 'abc');
  t.equal(parseIdempotencyKey(' k '), 'k');
  t.equal(parseIdempotencyKey(undefined), undefined);
  t.equal(parseIdempotencyKey(''), undefined);
  t.equal(parseIdempotencyKey('""'), undefined);
  t.equal(parseIdempotencyKey('has space'), undefined);
  t.equal(parseIdempotencyKey('ü'), undefined);
  t.equal(parseIdempotencyKey('x'.repeat(255)), 'x'.repeat(255));
  t.equal(parseIdempotencyKey('x'.repeat(256)), undefined);
});

t.test('an event keeps all its keys in one cluster slot', async (t) => {
  const slot = (key: string) => /\{([^}]+)\}/.exec(key)?.[1];
  t.equal(slot(redisKeys.idempotency('ev-1', 'd')), 'ev-1');
  t.equal(slot(redisKeys.admission('ev-1')), 'ev-1');
});
