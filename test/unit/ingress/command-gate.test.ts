import t from 'tap';
import { ReplyError as AnyReplyError } from 'ioredis';
import {
  canonicalJson,
  canonicalPath,
  keyDigest,
  parseIdempotencyKey,
  requestFingerprint,
  translateRedisError,
} from '../../../src/ingress/command-gate.js';
import { DependencyError } from '../../../src/errors.js';
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

t.test('canonical paths: the operation template with the decoded parameters', async (t) => {
  const reserve = '/v1/events/{event}/seats/{seat}/reserve';
  t.equal(canonicalPath(reserve, { event: 'e1', seat: 'A-1-1' }), '/v1/events/e1/seats/A-1-1/reserve', 'the URL as the API writes it');
  t.equal(canonicalPath('/v1/events/{event}/holds/{hold}/confirm', { event: 'e1', hold: 'h_1:2' }), '/v1/events/e1/holds/h_1:2/confirm');
});

/** The error ioredis rejects a command with when Redis answers an error reply. */
const ReplyError = AnyReplyError as new (message: string) => Error;

t.test('Redis error replies: the server unavailable is a DependencyError (503), a script bug is not', async (t) => {
  const reply = (message: string) => translateRedisError(new ReplyError(message), 'begin');
  for (const message of [
    "READONLY You can't write against a read only replica. script: 1f2e, on @user_script:12.",
    "OOM command not allowed when used memory > 'maxmemory'.",
    'BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.',
    'LOADING Redis is loading the dataset in memory',
    "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
    'CLUSTERDOWN The cluster is down',
    'TRYAGAIN Multiple keys request during rehashing of slot',
    'NOREPLICAS Not enough good replicas to write.',
    'MISCONF Redis is configured to save RDB snapshots, but it is currently not able to persist on disk.',
    "ERR Error running script (call to f_1f2e): @user_script:12: @user_script: 12: -READONLY You can't write against a read only replica.",
  ]) {
    const error = reply(message);
    t.ok(error instanceof DependencyError, `${message.slice(0, 40)} → DependencyError`);
    t.equal(error.code, 'redis_unavailable');
  }
  for (const message of [
    'ERR user_script:3: attempt to compare nil with number script: 1f2e, on @user_script:3.',
    'NOSCRIPT No matching script. Please use EVAL.',
    'WRONGTYPE Operation against a key holding the wrong kind of value',
    'ERR READONLY is only a word in this message',
  ]) {
    const error = reply(message);
    t.notOk(error instanceof DependencyError, `${message.slice(0, 40)} → not a dependency outage`);
    t.equal(error.code, 'redis_script_failed');
  }
  t.ok(translateRedisError(new Error('Connection is closed.'), 'begin') instanceof DependencyError, 'connection trouble');
});
