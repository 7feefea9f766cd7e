/**
 * What the ingress does with connections that misbehave, over real sockets: a 413 closes its
 * connection instead of reading the rest of a huge body; a request whose client stalls mid-body
 * is answered 408 and closed; a client resetting its connection mid-request is logged, not
 * printed to stderr.
 */
import { connect, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import t from 'tap';
import { pino } from 'pino';
import { standInToken, startStandInApp } from './stand-in-app.js';

/** Opens a socket to `url`'s port and collects what it receives until it closes. */
async function rawClient(url: string): Promise<{ socket: Socket; received: () => string; closed: Promise<number> }> {
  const { port } = new URL(url);
  const socket = connect({ host: '127.0.0.1', port: Number(port) });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  let text = '';
  socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
  socket.on('error', () => undefined);
  const opened = Date.now();
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now() - opened)));
  return { socket, received: () => text, closed };
}

const head = (token: string, length: number) =>
  `POST /v1/events/ev-1/holds HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nIdempotency-Key: k-1\r\n` +
  `Content-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`;

t.test('a body declared over the limit: 413, and the connection closes without reading the rest', async (t) => {
  const { running } = await startStandInApp(t);
  const client = await rawClient(running.url);
  client.socket.write(head(await standInToken('alice'), 1_000_000_000));
  // A client that goes on sending: the server must not read it all (a gigabyte) to keep the connection.
  const chunk = Buffer.alloc(64 * 1024, 0x20);
  const sending = setInterval(() => client.socket.writable && client.socket.write(chunk), 5);
  t.teardown(() => clearInterval(sending));
  const afterMs = await Promise.race([client.closed, new Promise<number>((resolve) => setTimeout(() => resolve(-1), 5000))]);
  clearInterval(sending);
  t.match(client.received(), /^HTTP\/1\.1 413 /, 'answered 413');
  t.match(client.received(), /\r\nconnection: close\r\n/i, 'saying the connection closes');
  t.ok(afterMs >= 0, `closed by the server (after ${afterMs} ms), not kept open to drain the body`);
  client.socket.destroy();
});

t.test('a client that stalls mid-body is answered 408 and its connection closed after the request timeout', async (t) => {
  const { running } = await startStandInApp(t, { requestTimeoutMs: 1000 });
  const client = await rawClient(running.url);
  client.socket.write(head(await standInToken('alice'), 40) + '{"seats":[');
  const afterMs = await Promise.race([client.closed, new Promise<number>((resolve) => setTimeout(() => resolve(-1), 8000))]);
  t.ok(afterMs >= 900 && afterMs < 4000, `closed after ${afterMs} ms (timeout 1000 ms, looked at every 250 ms)`);
  t.match(client.received(), /^HTTP\/1\.1 408 /, 'answered 408');
  client.socket.destroy();
});

t.test('a client resetting its connection mid-request is logged, not printed to stderr', async (t) => {
  const lines: { level: number; msg: string }[] = [];
  const log = pino(
    { level: 'debug' },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(JSON.parse(chunk.toString()) as { level: number; msg: string });
        done();
      },
    }),
  );
  const { running } = await startStandInApp(t, { log });
  const printed: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    printed.push(String(chunk));
    return (write as (...args: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stderr.write;
  t.teardown(() => (process.stderr.write = write));
  for (let i = 0; i < 3; i++) {
    const client = await rawClient(running.url);
    client.socket.write(head(await standInToken('alice'), 40) + '{"seats":[');
    await new Promise((resolve) => setTimeout(resolve, 50));
    client.socket.resetAndDestroy();
    await client.closed;
  }
  await new Promise((resolve) => setTimeout(resolve, 200));
  process.stderr.write = write;
  t.same(
    printed.filter((line) => /ECONNRESET|aborted|Error/.test(line)),
    [],
    'nothing printed to stderr',
  );
  t.ok(
    lines.some((line) => line.msg === 'Client went away mid-request' && line.level === 20),
    'the reset is logged at debug',
  );
  t.notOk(
    lines.some((line) => line.level >= 40),
    'and no warning or error',
  );
});
