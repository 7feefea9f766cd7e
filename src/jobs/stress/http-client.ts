/**
 * A lean HTTP/1.1 keep-alive client for the load generator. It shares two CPU cores with the
 * system under test, so every microsecond it spends is one the server does not get: requests are
 * written as one string per request, responses parsed with a few `indexOf`s, and connections are
 * reused: ~23 µs of CPU per request here, about a quarter less than `node:http` with a keep-alive agent
 * (ADR 0007). One request per connection at a time (no pipelining), as browsers and SDKs do.
 */
import { connect, type Socket } from 'node:net';
import { SentinelError } from '../../errors.js';

/** A complete response. */
export interface HttpResponse {
  readonly status: number;
  readonly body: string;
  /** `Retry-After` in seconds, when the server sent one as a number. */
  readonly retryAfterS: number | undefined;
}

/** The request never got a response: refused, reset, timed out or aborted. `code` says which. */
export class HttpTransportError extends SentinelError {
  constructor(
    readonly transportCode: string,
    message: string,
    cause?: unknown,
  ) {
    super(`http_${transportCode.toLowerCase()}`, message, { retryable: transportCode !== 'ABORTED', cause });
  }
}

interface Pending {
  readonly payload: string;
  readonly resolve: (response: HttpResponse) => void;
  readonly reject: (error: Error) => void;
  readonly timeoutMs: number;
}

const CRLFCRLF = Buffer.from('\r\n\r\n');

/** Parses one response out of a connection's received bytes; undefined while incomplete. */
export function parseResponse(data: Buffer): { response: HttpResponse; consumed: number; close: boolean } | undefined {
  const headEnd = data.indexOf(CRLFCRLF);
  if (headEnd < 0) return undefined;
  const head = data.toString('latin1', 0, headEnd);
  const status = Number(head.slice(9, 12));
  let contentLength = -1;
  let chunked = false;
  let close = head.startsWith('HTTP/1.0');
  let retryAfterS: number | undefined;
  let at = head.indexOf('\r\n');
  while (at >= 0 && at < head.length) {
    const next = head.indexOf('\r\n', at + 2);
    const line = head.slice(at + 2, next < 0 ? head.length : next);
    const colon = line.indexOf(':');
    if (colon > 0) {
      const name = line.slice(0, colon).toLowerCase();
      const value = line.slice(colon + 1).trim();
      if (name === 'content-length') contentLength = Number(value);
      else if (name === 'transfer-encoding') chunked = value.toLowerCase().includes('chunked');
      else if (name === 'connection') close = value.toLowerCase() === 'close';
      else if (name === 'retry-after' && /^\d+(\.\d+)?$/.test(value)) retryAfterS = Number(value);
    }
    at = next;
  }
  const bodyStart = headEnd + 4;
  if (status === 204 || status === 304 || (status >= 100 && status < 200)) {
    return { response: { status, body: '', retryAfterS }, consumed: bodyStart, close };
  }
  if (chunked) {
    const parts: Buffer[] = [];
    let pos = bodyStart;
    for (;;) {
      const lineEnd = data.indexOf('\r\n', pos);
      if (lineEnd < 0) return undefined;
      const size = parseInt(data.toString('latin1', pos, lineEnd), 16);
      if (Number.isNaN(size)) throw new HttpTransportError('EPROTO', 'malformed chunked response');
      if (size === 0) {
        const end = data.indexOf(CRLFCRLF, lineEnd - 2);
        if (end < 0) return undefined;
        return { response: { status, body: Buffer.concat(parts).toString('utf8'), retryAfterS }, consumed: end + 4, close };
      }
      if (data.length < lineEnd + 2 + size + 2) return undefined;
      parts.push(data.subarray(lineEnd + 2, lineEnd + 2 + size));
      pos = lineEnd + 2 + size + 2;
    }
  }
  if (contentLength < 0) {
    // Delimited by the connection closing: not produced by Koa; treated as an empty body.
    return { response: { status, body: '', retryAfterS }, consumed: bodyStart, close: true };
  }
  if (data.length < bodyStart + contentLength) return undefined;
  return {
    response: { status, body: data.toString('utf8', bodyStart, bodyStart + contentLength), retryAfterS },
    consumed: bodyStart + contentLength,
    close,
  };
}

/** One keep-alive connection carrying one request at a time. */
class Connection {
  private socket: Socket | undefined;
  private received: Buffer | undefined;
  private current: Pending | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly onIdle: (connection: Connection) => void,
  ) {}

  get busy(): boolean {
    return this.current !== undefined;
  }

  send(request: Pending): void {
    this.current = request;
    if (this.socket === undefined || this.socket.destroyed) this.open();
    this.timer = setTimeout(
      () => this.fail(new HttpTransportError('ETIMEDOUT', `no response within ${request.timeoutMs} ms`)),
      request.timeoutMs,
    );
    this.socket!.write(request.payload);
  }

  /** Opens the socket ahead of the first request; resolves once connected (or failed: the request will retry). */
  preconnect(): Promise<void> {
    if (this.socket !== undefined && !this.socket.destroyed) return Promise.resolve();
    this.open();
    const socket = this.socket!;
    return new Promise<void>((resolve) => {
      socket.once('connect', () => resolve());
      socket.once('close', () => resolve());
    });
  }

  private open(): void {
    const socket = connect({ host: this.host, port: this.port, noDelay: true });
    this.socket = socket;
    this.received = undefined;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (this.socket === socket) this.fail(new HttpTransportError(error.code ?? 'ESOCKET', error.message, error));
    });
    socket.on('close', () => {
      if (this.socket === socket) this.fail(new HttpTransportError('ECONNRESET', 'connection closed before the response'));
    });
  }

  private onData(chunk: Buffer): void {
    if (this.current === undefined) {
      // Bytes nobody asked for (a late answer to a timed-out request): the connection is unusable.
      this.drop();
      return;
    }
    this.received = this.received === undefined ? chunk : Buffer.concat([this.received, chunk]);
    let parsed;
    try {
      parsed = parseResponse(this.received);
    } catch (error) {
      this.fail(error as Error);
      return;
    }
    if (parsed === undefined) return;
    const request = this.current;
    this.current = undefined;
    clearTimeout(this.timer);
    this.received = parsed.consumed < this.received.length ? this.received.subarray(parsed.consumed) : undefined;
    if (parsed.close) this.drop();
    request.resolve(parsed.response);
    this.onIdle(this);
  }

  /** Fails the request in flight (if any) and discards the socket; the next request reconnects. */
  private fail(error: Error): void {
    this.drop();
    const request = this.current;
    if (request === undefined) return;
    this.current = undefined;
    clearTimeout(this.timer);
    request.reject(error);
    this.onIdle(this);
  }

  private drop(): void {
    const socket = this.socket;
    this.socket = undefined;
    this.received = undefined;
    socket?.destroy();
  }

  abort(): void {
    this.fail(new HttpTransportError('ABORTED', 'the run was stopped'));
  }
}

/** Connections to one origin (`http://host:port`), at most `maxConnections`, with a FIFO of waiting requests. */
export class HttpClient {
  readonly origin: string;
  private readonly host: string;
  private readonly port: number;
  private readonly hostHeader: string;
  private readonly idle: Connection[] = [];
  private readonly all: Connection[] = [];
  private readonly waiting: Pending[] = [];
  private closed = false;

  constructor(
    origin: string,
    private readonly options: { maxConnections: number; timeoutMs: number },
  ) {
    const url = new URL(origin);
    if (url.protocol !== 'http:') throw new SentinelError('stress_target', `only http:// targets are supported, got ${origin}`);
    this.origin = url.origin;
    this.host = url.hostname.replace(/^\[|\]$/g, '');
    this.port = Number(url.port || 80);
    this.hostHeader = url.host;
  }

  /**
   * Sends a request. `headers` are complete header lines (`name: value\r\n` each); Host and
   * Content-Length are added here.
   */
  request(method: string, path: string, headers: string, body?: string): Promise<HttpResponse> {
    if (this.closed) return Promise.reject(new HttpTransportError('ABORTED', 'client closed'));
    const length =
      body === undefined ? (method === 'POST' ? 'content-length: 0\r\n' : '') : `content-length: ${Buffer.byteLength(body)}\r\n`;
    const payload = `${method} ${path} HTTP/1.1\r\nhost: ${this.hostHeader}\r\n${headers}${length}\r\n${body ?? ''}`;
    return new Promise<HttpResponse>((resolve, reject) => {
      const pending: Pending = { payload, resolve, reject, timeoutMs: this.options.timeoutMs };
      const connection = this.idle.pop() ?? this.grow();
      if (connection) connection.send(pending);
      else this.waiting.push(pending);
    });
  }

  /**
   * Opens up to `count` connections before a run starts, `batch` at a time, so the run measures
   * requests rather than a storm of TCP handshakes against the server's listen backlog — and
   * proves each with a `GET <probePath>` (any answer will do). The kernel completes a handshake
   * before the server accepts the connection, which it does when its event loop gets there: a
   * request sent on a connection the client sees as open may first wait for that, and the first
   * requests of a rush onto a server still accepting the rest waited up to a second
   * (docs/benchmarks.md, 2026-12-03). The probes are answered before the clock starts.
   */
  async preconnect(count: number, batch = 100, probePath = '/healthz'): Promise<void> {
    const opened: Connection[] = [];
    while (opened.length < count) {
      const group: Connection[] = [];
      for (let i = 0; i < batch && opened.length + group.length < count; i++) {
        const connection = this.grow();
        if (connection === undefined) break;
        group.push(connection);
      }
      if (group.length === 0) break;
      await Promise.all(group.map((c) => c.preconnect()));
      opened.push(...group);
    }
    this.idle.push(...opened);
    // One probe per idle connection, all at once: each takes a connection of its own. A probe that
    // fails costs its connection, which the run opens again when it needs it.
    await Promise.all(opened.map(() => this.request('GET', probePath, '').catch(() => undefined)));
  }

  private grow(): Connection | undefined {
    if (this.all.length >= this.options.maxConnections) return undefined;
    const connection = new Connection(this.host, this.port, (c) => this.release(c));
    this.all.push(connection);
    return connection;
  }

  private release(connection: Connection): void {
    if (connection.busy) return;
    const next = this.waiting.shift();
    if (next !== undefined) connection.send(next);
    else this.idle.push(connection);
  }

  /** Aborts everything in flight and waiting, and closes the connections. */
  close(): void {
    this.closed = true;
    for (const pending of this.waiting.splice(0)) pending.reject(new HttpTransportError('ABORTED', 'client closed'));
    for (const connection of this.all) connection.abort();
    this.idle.length = 0;
  }
}
