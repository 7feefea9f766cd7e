import t from 'tap';
import type { ShardResult } from '../../../src/domain/commands.js';
import { ShardError } from '../../../src/engine/shard-client.js';
import { DeadlineError, DependencyError, FencedError, SentinelError } from '../../../src/errors.js';
import { HttpProblem, PROBLEM_BASE, PROBLEMS, problemOf, ShardRejection } from '../../../src/ingress/problems.js';

type Failure = Extract<ShardResult, { ok: false }>;

t.test('every shard rejection has its precise status and stable type', async (t) => {
  const cases: [Failure, number, string, Record<string, unknown>][] = [
    [{ ok: false, type: 'unavailable', seats: ['A-1-1'], message: 'taken' }, 409, 'seats-unavailable', { seats: ['A-1-1'] }],
    [
      { ok: false, type: 'limit-exceeded', limit: 4, current: 3, requested: 2, message: 'limit' },
      422,
      'limit-exceeded',
      { limit: 4, current: 3, requested: 2 },
    ],
    [{ ok: false, type: 'hold-not-found', holdId: 'h1', message: 'no' }, 404, 'hold-not-found', {}],
    [{ ok: false, type: 'hold-expired', holdId: 'h1', message: 'expired' }, 409, 'hold-expired', { holdId: 'h1' }],
    [
      { ok: false, type: 'hold-confirmed', holdId: 'h1', reservationId: 'r1', message: 'done' },
      409,
      'hold-confirmed',
      { holdId: 'h1', reservationId: 'r1' },
    ],
    [
      { ok: false, type: 'invalid', field: 'seats', message: 'bad' },
      422,
      'invalid-command',
      { errors: [{ pointer: '#/seats', detail: 'bad' }] },
    ],
    [{ ok: false, type: 'idempotency-mismatch', message: 'other command' }, 422, 'idempotency-key-reused', {}],
    [{ ok: false, type: 'not-serving', state: 'loading', retryable: true, message: 'loading' }, 503, 'shard-unavailable', {}],
  ];
  for (const [result, status, slug, extensions] of cases) {
    const p = problemOf(new ShardRejection(result), 'req-1');
    t.equal(p.status, status, result.type);
    t.equal(p.body.type, PROBLEM_BASE + slug, result.type);
    t.equal(p.body.status, status);
    t.equal(p.body.requestId, 'req-1');
    t.match(p.body, extensions);
    t.notOk(p.unexpected);
  }
});

t.test('a hold of another customer reveals nothing beyond "not found"', async (t) => {
  const p = problemOf(new ShardRejection({ ok: false, type: 'hold-not-found', holdId: 'h9', message: 'hold h9 belongs to bob' }), 'r');
  t.notMatch(p.body.detail, /bob/);
});

t.test('retryable infrastructure trouble is a 503 with Retry-After, never a 500', async (t) => {
  for (const error of [
    new DeadlineError('late'),
    new FencedError('fenced'),
    new DependencyError('redis', 'down'),
    new ShardError('commit_failed', 'x', { retryable: true }),
  ]) {
    const p = problemOf(error, 'r');
    t.equal(p.status, 503, error.name);
    t.equal(p.headers['Retry-After'], '1');
    t.notOk(p.unexpected);
  }
  t.equal(problemOf(new DependencyError('postgres', 'down'), 'r').body.type, PROBLEM_BASE + 'dependency-unavailable');
});

t.test('anything unexpected is a 500 that carries the correlation id and nothing else', async (t) => {
  const error = new TypeError("Cannot read properties of undefined (reading 'secret')");
  const p = problemOf(error, 'corr-42');
  t.equal(p.status, 500);
  t.ok(p.unexpected);
  t.equal(p.body.requestId, 'corr-42');
  t.match(p.body.detail, /corr-42/);
  t.notMatch(JSON.stringify(p.body), /secret|TypeError|at /);
  t.equal(problemOf(new SentinelError('postgres_error', 'syntax error at or near'), 'x').status, 500);
  t.equal(problemOf(new ShardError('bad_request', 'cannot decode'), 'x').status, 500);
  t.equal(problemOf('a string', 'x').status, 500);
});

t.test('HttpProblem carries extensions, headers and Retry-After (rounded up, at least 1 s)', async (t) => {
  const p = problemOf(new HttpProblem('too-many-requests', 'slow down', { retryAfterS: 0.004 }), 'r');
  t.equal(p.status, 429);
  t.equal(p.headers['Retry-After'], '1');
  t.equal(problemOf(new HttpProblem('too-many-requests', 'x', { retryAfterS: 2.2 }), 'r').headers['Retry-After'], '3');
  const v = problemOf(
    new HttpProblem('validation-failed', 'bad', { extensions: { errors: [{ pointer: '#/x', detail: 'is not a known field' }] } }),
    'r',
  );
  t.same(v.body.errors, [{ pointer: '#/x', detail: 'is not a known field' }]);
  const m = problemOf(new HttpProblem('method-not-allowed', 'no', { headers: { Allow: 'GET' } }), 'r');
  t.equal(m.headers['Allow'], 'GET');
});

t.test('koa/router http errors map onto the catalog', async (t) => {
  const httpError = (status: number) => Object.assign(new Error('x'), { status, expose: status < 500 });
  t.equal(problemOf(httpError(404), 'r').body.type, PROBLEM_BASE + 'not-found');
  t.equal(problemOf(httpError(413), 'r').status, 413);
  t.equal(problemOf(httpError(400), 'r').status, 400);
  t.equal(problemOf(httpError(502), 'r').status, 500, 'a non-exposed 5xx is internal');
});

t.test('the catalog: unique slugs, statuses in range, titles present', async (t) => {
  for (const [slug, kind] of Object.entries(PROBLEMS)) {
    t.match(slug, /^[a-z]+(-[a-z]+)*$/);
    t.ok(kind.status >= 400 && kind.status < 600);
    t.ok(kind.title.length > 0);
  }
});
