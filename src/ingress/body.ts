/**
 * Reading a JSON request body, strictly: declared or actual size over the limit → 413 (read no
 * further), a body that is not `application/json` → 415, bytes that are not JSON → 400.
 */
import type { IncomingMessage } from 'node:http';
import { HttpProblem } from './problems.js';

/** Largest request body accepted, in bytes. The largest valid body (100 seat ids) is far smaller. */
export const BODY_LIMIT_BYTES = 16 * 1024;

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

/**
 * A 413 closes its connection: the rest of the body is not read (the connection could be reused
 * only after all of it — a declared gigabyte — had been read and thrown away).
 */
const TOO_LARGE = (limit: number) => ({ extensions: { limit }, headers: { Connection: 'close' } });

/** Reads the body; resolves to undefined when there is none (no bytes at all). */
export async function readJsonBody(req: IncomingMessage, limit = BODY_LIMIT_BYTES): Promise<unknown> {
  const declared = req.headers['content-length'];
  // HTTP/1.1: without Content-Length or Transfer-Encoding a request has no body; don't wait for one.
  if ((declared === undefined && req.headers['transfer-encoding'] === undefined) || declared === '0') return undefined;
  if (declared !== undefined && Number(declared) > limit) {
    req.resume(); // drain what comes until the answer has gone and the connection closes (TOO_LARGE)
    throw new HttpProblem('body-too-large', `request body of ${declared} bytes exceeds the limit of ${limit} bytes`, TOO_LARGE(limit));
  }
  // A client that went away before sending all of its body (it timed out, or aborted: common in a
  // rush) is not an internal error, and a stream destroyed before anyone listened emits neither
  // 'end' nor 'error': waited on, it would hold the request for good.
  const cutOff = () => new HttpProblem('validation-failed', 'the request body was cut off: the client closed the connection');
  if (req.destroyed || req.readableAborted) throw cutOff();
  const { chunks, size } = await new Promise<{ chunks: Buffer[]; size: number }>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    // Listeners, not async iteration: leaving a for-await early destroys the socket, and the
    // client would see a reset instead of its 413.
    req.on('data', (chunk: Buffer) => {
      if (failed) return; // keep draining what is left of an oversized body
      size += chunk.length;
      if (size > limit) {
        failed = true;
        chunks.length = 0;
        reject(new HttpProblem('body-too-large', `request body exceeds the limit of ${limit} bytes`, TOO_LARGE(limit)));
        return;
      }
      chunks.push(chunk);
    });
    let ended = false;
    req.once('end', () => {
      ended = true;
      resolve({ chunks, size });
    });
    // 'close' follows 'end' on every request: the problem is built only for a body cut off (an
    // error built per request, stack and all, was 3 % of the ingress's CPU in a rush of holds).
    const cut = () => {
      if (!ended && !failed) reject(cutOff());
    };
    req.once('error', cut);
    req.once('close', cut);
  });
  if (size === 0) return undefined;
  const type = req.headers['content-type'];
  if (type === undefined || !JSON_TYPE.test(type)) {
    throw new HttpProblem(
      'unsupported-media-type',
      `request body must be application/json, got ${type === undefined ? 'no Content-Type' : JSON.stringify(type)}`,
    );
  }
  const text = Buffer.concat(chunks, size).toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new HttpProblem('malformed-json', `request body is not valid JSON: ${(error as Error).message}`);
  }
}
