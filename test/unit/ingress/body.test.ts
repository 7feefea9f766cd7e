import { Readable } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import t from 'tap';
import { readJsonBody } from '../../../src/ingress/body.js';
import { HttpProblem } from '../../../src/ingress/problems.js';

/** The problem type a promise rejects with. */
async function problemOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'resolved';
  } catch (error) {
    return error instanceof HttpProblem ? error.problem : String(error);
  }
}

function request(body: string | Buffer[], headers: Record<string, string> = { 'content-type': 'application/json' }): IncomingMessage {
  const chunks = typeof body === 'string' ? (body === '' ? [] : [Buffer.from(body)]) : body;
  // Like a real client: a length for a string body, chunked for a streamed one.
  const framing = typeof body === 'string' ? { 'content-length': String(Buffer.byteLength(body)) } : { 'transfer-encoding': 'chunked' };
  return Object.assign(Readable.from(chunks), { headers: { ...framing, ...headers } }) as unknown as IncomingMessage;
}

t.test('JSON bodies are parsed; no body is undefined', async (t) => {
  t.same(await readJsonBody(request('{"seats":["A-1-1"]}')), { seats: ['A-1-1'] });
  t.same(await readJsonBody(request('{}', { 'content-type': 'application/merge-patch+json' })), {});
  t.same(await readJsonBody(request('{}', { 'content-type': 'Application/JSON; charset=utf-8' })), {});
  t.equal(await readJsonBody(request('')), undefined);
  t.equal(await readJsonBody(request('', {})), undefined, 'no body needs no content type');
  const unframed = Object.assign(Readable.from([]), { headers: {} }) as unknown as IncomingMessage;
  t.equal(await readJsonBody(unframed), undefined, 'no Content-Length, no Transfer-Encoding: no body, nothing read');
});

t.test('each bad body has its own problem', async (t) => {
  t.equal(await problemOf(readJsonBody(request('{"seats": ['))), 'malformed-json');
  t.equal(
    await problemOf(readJsonBody(request('seats=A-1-1', { 'content-type': 'application/x-www-form-urlencoded' }))),
    'unsupported-media-type',
  );
  t.equal(await problemOf(readJsonBody(request('{}', {}))), 'unsupported-media-type');
  t.equal(await problemOf(readJsonBody(request('{}', { 'content-type': 'application/jsonx' }))), 'unsupported-media-type');
});

t.test('the size limit: declared or streamed', async (t) => {
  t.equal(
    await problemOf(readJsonBody(request('{}', { 'content-type': 'application/json', 'content-length': '100000' }), 1024)),
    'body-too-large',
  );
  const big = Array.from({ length: 20 }, () => Buffer.alloc(100, 0x20));
  t.equal(await problemOf(readJsonBody(request(big), 1024)), 'body-too-large');
  t.same(await readJsonBody(request(' {} '), 4), {}, 'exactly at the limit is fine');
});

t.test('a client that goes away before its whole body arrived: a 400, never a hang or a 500', async (t) => {
  const gone = request('{"seats":["A-1-1"]}');
  gone.destroy();
  t.equal(await problemOf(readJsonBody(gone)), 'validation-failed', 'destroyed before the read began');
  // Half a body, then the connection closes (an abort: no 'end').
  const half = Object.assign(new Readable({ read: () => undefined }), {
    headers: { 'content-type': 'application/json', 'content-length': '40' },
  }) as unknown as IncomingMessage;
  const reading = problemOf(readJsonBody(half));
  half.push(Buffer.from('{"seats":['));
  setImmediate(() => half.destroy());
  t.equal(await reading, 'validation-failed', 'cut off mid-body');
  const aborted = Object.assign(new Readable({ read: () => undefined }), {
    headers: { 'content-type': 'application/json', 'content-length': '40' },
  }) as unknown as IncomingMessage;
  const failing = problemOf(readJsonBody(aborted));
  setImmediate(() => aborted.destroy(Object.assign(new Error('aborted'), { code: 'ECONNRESET' })));
  t.equal(await failing, 'validation-failed', 'reset mid-body');
});
