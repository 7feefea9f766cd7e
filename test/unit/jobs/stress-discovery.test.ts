/**
 * What a stress run reads before its load — the event's sections and pools through the API — and
 * what it says when it cannot: an unknown event or a refused token is bad usage (exit 2, one line),
 * a 5xx is the system's; never a plain Error (a stack trace and exit 1).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { DependencyError, type SentinelError } from '../../../src/errors.js';
import { UnknownEventError, UsageError } from '../../../src/jobs/options.js';
import { HttpClient } from '../../../src/jobs/stress/http-client.js';
import { discoverInventory, discoveryError } from '../../../src/jobs/stress/stress.js';

const problem = (slug: string, status: number, detail: string) =>
  JSON.stringify({ type: `https://sentinel.dev/problems/${slug}`, title: slug, status, detail });

/** A fake ingress: `answer` decides each GET. */
async function ingress(
  t: { teardown: (fn: () => Promise<void>) => void },
  answer: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ target: string; client: HttpClient }> {
  const server = createServer(answer);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const target = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const client = new HttpClient(target, { maxConnections: 2, timeoutMs: 2000 });
  t.teardown(async () => {
    client.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { target, client };
}

const json = (res: ServerResponse, status: number, body: string) => {
  res.writeHead(status, { 'content-type': status === 200 ? 'application/json' : 'application/problem+json' });
  res.end(body);
};

t.test('discovery reads the sections, their rows and the pools', async (t) => {
  const { target, client } = await ingress(t, (req, res) => {
    if (req.url === '/v1/events/ev/availability')
      return json(res, 200, JSON.stringify({ sections: [{ section: 'A' }], pools: [{ pool: 'GA', total: 50 }] }));
    if (req.url === '/v1/events/ev/seats?section=A')
      return json(
        res,
        200,
        JSON.stringify({
          rows: [
            { row: '1', seats: [{}, {}, {}] },
            { row: '2', seats: [{}] },
          ],
        }),
      );
    json(res, 404, problem('not-found', 404, 'no resource'));
  });
  t.same(await discoverInventory(client, 'ev', 'token', target), {
    sections: [
      {
        id: 'A',
        rows: [
          { id: '1', seats: 3 },
          { id: '2', seats: 1 },
        ],
      },
    ],
    pools: [{ id: 'GA', capacity: 50 }],
  });
});

t.test('an unknown event is bad usage, naming the event and the ingress', async (t) => {
  const { target, client } = await ingress(t, (_req, res) => json(res, 404, problem('event-not-found', 404, 'no event typo')));
  const error = await discoverInventory(client, 'typo', 'token', target).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(error instanceof UnknownEventError, 'an UnknownEventError');
  t.ok(error instanceof UsageError, 'which is bad usage (exit 2)');
  t.equal((error as SentinelError).code, 'unknown_event');
  t.match((error as Error).message, `no event typo at ${target} (GET /v1/events/typo/availability answered 404)`);
});

t.test('a refused token names the settings that must match the ingress', async (t) => {
  for (const status of [401, 403]) {
    const error = discoveryError(
      'http://127.0.0.1:8080',
      '/v1/events/ev/availability',
      status,
      problem('unauthorized', status, 'signature verification failed'),
      'ev',
    );
    t.ok(error instanceof UsageError, `${status}: bad usage`);
    t.equal(error.code, 'token_refused');
    t.match(error.message, /refused the customers' tokens .*answered \d{3}: signature verification failed/);
    t.match(error.message, /SENTINEL_JWT_SECRET, SENTINEL_JWT_ISSUER and SENTINEL_JWT_AUDIENCE must be the ingress's/);
  }
});

t.test('other answers: a 5xx is the system’s (retry later), anything else says what came back', async (t) => {
  const down = discoveryError(
    'http://h:1',
    '/v1/events/ev/availability',
    503,
    problem('dependency-unavailable', 503, 'postgres down'),
    'ev',
  );
  t.ok(down instanceof DependencyError, 'a 5xx is a DependencyError');
  t.notOk(down instanceof UsageError);
  t.match(down.message, 'GET http://h:1/v1/events/ev/availability answered 503 (dependency-unavailable: postgres down)');
  // A 404 that is not the ingress's "no such event" (another server on the port) is no verdict on the event.
  const elsewhere = discoveryError('http://h:1', '/v1/events/ev/availability', 404, 'Not Found', 'ev');
  t.notOk(elsewhere instanceof UsageError);
  t.equal(elsewhere.code, 'stress_discovery');
  t.match(elsewhere.message, 'answered 404 (http-404): cannot read the inventory of ev');
});
