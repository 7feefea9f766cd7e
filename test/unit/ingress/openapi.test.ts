import t from 'tap';
import { loadOpenApi } from '../../../src/ingress/openapi.js';

const api = loadOpenApi();
const op = (id: string) => {
  const found = api.operations.find((o) => o.operationId === id);
  if (!found) throw new Error(`no operation ${id}`);
  return found;
};

t.test('the document lists exactly the routes of the issue', async (t) => {
  t.same(api.operations.map((o) => `${o.method} ${o.path}`).sort(), [
    'DELETE /v1/events/{event}/holds/{hold}',
    'GET /healthz',
    'GET /metrics',
    'GET /openapi.json',
    'GET /readyz',
    'GET /v1/events/{event}/availability',
    'GET /v1/events/{event}/holds/{hold}',
    'GET /v1/events/{event}/seats',
    'GET /v1/reservations/{reservation}',
    'POST /v1/events/{event}/holds',
    'POST /v1/events/{event}/holds/{hold}/confirm',
    'POST /v1/events/{event}/seats/{seat}/reserve',
  ]);
  t.equal(api.document.openapi, '3.1.0');
  for (const o of api.operations) {
    t.equal(o.authenticated, o.path.startsWith('/v1/'), `${o.operationId}: /v1 needs a token, operations endpoints do not`);
    t.equal(o.requiredHeaders.includes('idempotency-key'), o.method === 'POST', `${o.operationId}: every POST needs an Idempotency-Key`);
  }
  t.equal(op('createHold').routerPath, '/v1/events/:event/holds');
});

t.test('hold bodies: each form accepted, each mistake named precisely', async (t) => {
  const check = op('createHold').body!.check;
  t.same(check({ seats: ['A-12-7', 'A-12-8'] }), []);
  t.same(check({ section: 'A', quantity: 4 }), []);
  t.same(check({ pool: 'GA', quantity: 2 }), []);
  const cases: [unknown, { pointer: string; detail: RegExp }][] = [
    [
      { seats: ['A-1-1'], extra: true },
      { pointer: '#/extra', detail: /not a known field/ },
    ],
    [
      { section: 'A', quantity: 0 },
      { pointer: '#/quantity', detail: /≥ 1/ },
    ],
    [
      { section: 'A', quantity: -3 },
      { pointer: '#/quantity', detail: /≥ 1/ },
    ],
    [
      { section: 'A', quantity: 2.5 },
      { pointer: '#/quantity', detail: /integer/ },
    ],
    [
      { section: 'A', quantity: '2' },
      { pointer: '#/quantity', detail: /integer/ },
    ],
    [{ pool: 'GA' }, { pointer: '#/quantity', detail: /required/ }],
    [{ seats: 'A-1-1' }, { pointer: '#/seats', detail: /array/ }],
    [{ seats: [] }, { pointer: '#/seats', detail: /at least 1/ }],
    [{ seats: ['A-1-1', 'A-1-1'] }, { pointer: '#/seats', detail: /repeat/ }],
    [{ seats: ['A-1-01'] }, { pointer: '#/seats/0', detail: /match/ }],
    [{ seats: [7] }, { pointer: '#/seats/0', detail: /string/ }],
    [
      { section: 'A', pool: 'GA', quantity: 1 },
      { pointer: '#/pool', detail: /not a known field/ },
    ],
    [{}, { pointer: '#', detail: /exactly one of/ }],
    [[], { pointer: '#', detail: /object/ }],
    ['seats', { pointer: '#', detail: /object/ }],
    [{ seats: Array.from({ length: 101 }, (_, i) => `A-1-${i + 1}`) }, { pointer: '#/seats', detail: /at most 100/ }],
  ];
  for (const [body, expected] of cases) {
    const errors = check(body);
    t.equal(errors.length, 1, `${JSON.stringify(body).slice(0, 60)} → one error (${JSON.stringify(errors)})`);
    t.match(errors[0], expected);
  }
});

t.test('confirm and reserve take no body members', async (t) => {
  t.same(op('reserveSeat').body!.check({}), []);
  t.equal(op('reserveSeat').body!.required, false);
  t.match(op('confirmHold').body!.check({ note: 'x' }), [{ pointer: '#/note', detail: /not a known field/ }]);
});

t.test('path and query parameters use the same schemas', async (t) => {
  const reserve = op('reserveSeat');
  t.same(reserve.pathParams!({ event: 'concert-1', seat: 'A-12-7' }), []);
  t.match(reserve.pathParams!({ event: 'concert-1', seat: 'A-12' }), [{ pointer: '#/path/seat' }]);
  t.match(reserve.pathParams!({ event: 'bad.event', seat: 'A-1-1' }), [{ pointer: '#/path/event' }]);
  const seatMap = op('getSeatMap');
  t.match(seatMap.queryParams!({}), [{ pointer: '#/query/section', detail: /required/ }]);
  t.same(seatMap.queryParams!({ section: 'A', unrelated: '1' }), []);
});

t.test('every documented response of a /v1 operation names its problem schema', async (t) => {
  for (const [path, item] of Object.entries(api.document.paths)) {
    for (const [method, operation] of Object.entries(item)) {
      if (method === 'parameters' || !path.startsWith('/v1/')) continue;
      const responses = (operation as { responses: Record<string, unknown> }).responses;
      t.ok(responses['401'], `${method} ${path} documents 401`);
      t.ok(responses['500'], `${method} ${path} documents 500`);
    }
  }
});

t.test('the document declares the statuses and headers the implementation sends', async (t) => {
  type Response = { $ref?: string; headers?: Record<string, unknown> };
  const components = api.document.components as unknown as { responses: Record<string, Response> };
  const resolve = (response: Response) => (response.$ref ? components.responses[response.$ref.split('/').pop()!]! : response);
  for (const [path, item] of Object.entries(api.document.paths)) {
    for (const [method, operation] of Object.entries(item)) {
      if (method === 'parameters') continue;
      const responses = (operation as { responses: Record<string, Response> }).responses;
      const name = `${method.toUpperCase()} ${path}`;
      // Any other method on a known path is 405 with Allow (app.ts).
      t.ok(responses['405'], `${name} documents 405`);
      t.ok(resolve(responses['405']!).headers?.['Allow'], `${name} 405 declares Allow`);
      for (const [status, response] of Object.entries(responses))
        t.ok(resolve(response).headers?.['X-Request-Id'], `${name} ${status} declares X-Request-Id (every response carries it)`);
      if (method === 'post') t.ok(resolve(responses['201']!).headers?.['Idempotent-Replayed'], `${name} 201 declares Idempotent-Replayed`);
    }
  }
  const get = (operationId: string) =>
    Object.values(api.document.paths)
      .flatMap((item) => Object.values(item))
      .find((o) => (o as { operationId?: string }).operationId === operationId) as { responses: Record<string, unknown> };
  t.ok(get('getMetrics').responses['503'], '/metrics may be 503 (the workers of --workers N could not be collected)');
  t.ok(get('releaseHold').responses['422'], 'releaseHold maps a shard `invalid` to 422');
  t.ok(get('getHold').responses['404'], "getHold: unknown and other customers' holds are 404");
});

t.test('checkResponse: a header the response carries must be declared for its status', async (t) => {
  const headers = (entries: Record<string, string>) => new Headers(entries);
  const hold = {
    holdId: 'h_1',
    eventId: 'e1',
    seats: ['A-1-1'],
    quantity: 1,
    createdAt: '2026-01-01T00:00:00.000Z',
    expiresAt: '2026-01-01T00:10:00.000Z',
  };
  t.same(api.checkResponse('createHold', 201, hold, headers({ Location: '/x', 'Idempotent-Replayed': 'true', 'X-Request-Id': 'r' })), []);
  t.match(api.checkResponse('createHold', 201, hold, headers({ Allow: 'POST' })), [{ pointer: '#/header/Allow' }]);
  const problem = {
    type: 'https://sentinel.dev/problems/event-not-found',
    title: 'No such event',
    status: 404,
    detail: 'x',
    requestId: 'r',
  };
  t.same(api.checkResponse('getAvailability', 404, problem, headers({ 'X-Request-Id': 'r' })), []);
  t.match(api.checkResponse('getAvailability', 404, problem, headers({ 'Retry-After': '1' })), [{ pointer: '#/header/Retry-After' }]);
});
