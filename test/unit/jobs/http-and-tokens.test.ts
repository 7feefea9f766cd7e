import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { jwtVerify } from 'jose';
import { HttpClient, HttpTransportError, parseResponse } from '../../../src/jobs/stress/http-client.js';
import { CustomerTokens, signCustomerToken } from '../../../src/jobs/stress/tokens.js';
import { checkTargets, isLoopbackHost } from '../../../src/jobs/targets.js';

t.test('parses content-length, chunked and bodiless responses', async (t) => {
  const fixed = Buffer.from('HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{"a":1}');
  t.same(parseResponse(fixed), {
    response: { status: 201, body: '{"a":1}', retryAfterS: undefined },
    consumed: fixed.length,
    close: false,
  });
  t.equal(parseResponse(fixed.subarray(0, fixed.length - 2)), undefined, 'incomplete body waits for more');
  t.equal(parseResponse(fixed.subarray(0, 20)), undefined, 'incomplete head waits for more');
  const chunked = Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n');
  t.equal(parseResponse(chunked)?.response.body, 'abcde');
  t.equal(parseResponse(chunked.subarray(0, chunked.length - 3)), undefined);
  const throttled = Buffer.from('HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
  t.same(parseResponse(throttled)?.response, { status: 429, body: '', retryAfterS: 2 });
  t.equal(parseResponse(throttled)?.close, true);
  t.same(parseResponse(Buffer.from('HTTP/1.1 204 No Content\r\n\r\n'))?.response, { status: 204, body: '', retryAfterS: undefined });
});

t.test('the client reuses connections, queues beyond its limit and reports transport errors', async (t) => {
  let connections = 0;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      if (req.url === '/slow') return; // never answers
      res.writeHead(req.method === 'DELETE' ? 204 : 201, { 'content-type': 'application/json' });
      res.end(req.method === 'DELETE' ? undefined : JSON.stringify({ path: req.url, body, auth: req.headers['authorization'] }));
    });
  });
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const port = (server.address() as AddressInfo).port;
  const client = new HttpClient(`http://127.0.0.1:${port}`, { maxConnections: 4, timeoutMs: 300 });
  const answers = await Promise.all(
    Array.from({ length: 40 }, (_, i) =>
      client.request('POST', `/x/${i}`, 'authorization: Bearer t\r\ncontent-type: application/json\r\n', `{"i":${i}}`),
    ),
  );
  t.ok(answers.every((a, i) => a.status === 201 && JSON.parse(a.body).path === `/x/${i}` && JSON.parse(a.body).body === `{"i":${i}}`));
  t.equal(JSON.parse(answers[0]!.body).auth, 'Bearer t');
  t.ok(connections <= 4, `${connections} connections for 40 requests`);
  t.equal((await client.request('DELETE', '/y', '')).status, 204);
  const timedOut = await client.request('GET', '/slow', '').catch((e: unknown) => e);
  t.ok(timedOut instanceof HttpTransportError && timedOut.transportCode === 'ETIMEDOUT', 'a silent server times out');
  t.equal((await client.request('GET', '/after', '')).status, 201, 'the client recovers after a timeout');
  client.close();
  const refused = new HttpClient('http://127.0.0.1:1', { maxConnections: 1, timeoutMs: 1000 });
  const error = await refused.request('GET', '/', '').catch((e: unknown) => e);
  t.ok(
    error instanceof HttpTransportError && error.transportCode === 'ECONNREFUSED' && error.retryable,
    'refused connections are retryable',
  );
});

t.test('preconnect opens the connections and proves each with one probe before the run', async (t) => {
  const probed = new Set<unknown>();
  const seen: string[] = [];
  let accepted = 0;
  const server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    probed.add(req.socket);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"status":"ok"}');
  });
  server.on('connection', () => accepted++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const client = new HttpClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, { maxConnections: 40, timeoutMs: 5000 });
  t.teardown(() => client.close());

  await client.preconnect(30, 8);
  t.equal(accepted, 30, 'every connection was accepted by the server before the run starts');
  t.equal(seen.length, 30);
  t.ok(
    seen.every((s) => s === 'GET /healthz'),
    'each answered one probe',
  );
  t.equal(probed.size, 30, 'one per connection');
  await Promise.all(Array.from({ length: 30 }, () => client.request('POST', '/x', '')));
  t.equal(accepted, 30, 'the run uses them: no connection opened after');
});

t.test('customer tokens verify with jose under the ingress settings', async (t) => {
  const settings = { secret: 'a-test-secret-of-enough-length!!', issuer: 'sentinel', audience: 'sentinel-api', ttlS: 600 };
  const { payload, protectedHeader } = await jwtVerify(signCustomerToken(settings, 'fan-1'), new TextEncoder().encode(settings.secret), {
    issuer: 'sentinel',
    audience: 'sentinel-api',
    algorithms: ['HS256'],
  });
  t.equal(payload.sub, 'fan-1');
  t.equal(protectedHeader.alg, 'HS256');
  t.equal((payload.exp as number) - (payload.iat as number), 600);
  const tokens = new CustomerTokens(settings);
  t.equal(tokens.get('a'), tokens.get('a'), 'one token per customer');
  t.not(tokens.get('a'), tokens.get('b'));
  t.equal(tokens.size, 2);
});

t.test('targets are loopback unless remote is allowed', async (t) => {
  t.ok(isLoopbackHost('127.0.0.1') && isLoopbackHost('localhost') && isLoopbackHost('[::1]') && isLoopbackHost('127.3.2.1'));
  t.notOk(isLoopbackHost('10.0.0.1') || isLoopbackHost('sentinel-ingress.sentinel.svc'));
  t.same(checkTargets(['http://127.0.0.1:8080/'], false), ['http://127.0.0.1:8080']);
  t.throws(() => checkTargets(['http://sentinel-ingress:8080'], false), /--allow-remote/);
  t.same(checkTargets(['http://sentinel-ingress:8080'], true), ['http://sentinel-ingress:8080']);
  t.throws(() => checkTargets(['https://127.0.0.1'], false), /only http/);
  t.throws(() => checkTargets([], false), /at least one/);
});
