/**
 * RFC 9457 problem details: the catalog of every problem the ingress answers with, and the one
 * function (`problemOf`) that turns any error into a status code and a problem document. Nothing
 * else in the ingress decides an error's HTTP status.
 */
import type { ShardResult } from '../domain/commands.js';
import { DeadlineError, DependencyError, FencedError, SentinelError } from '../errors.js';
import { ShardError } from '../engine/shard-client.js';

/** Base of every problem `type` URI. The URIs are stable: clients may branch on them. */
export const PROBLEM_BASE = 'https://sentinel.dev/problems/';

/** One kind of problem: its stable slug (the end of its `type` URI), status and title. */
export interface ProblemKind {
  readonly status: number;
  readonly title: string;
  /**
   * The inventory refused the command for good: it was not carried out, and a retry with the same
   * Idempotency-Key is refused again. `sentinel verify` holds every such answer to that.
   */
  readonly refusal?: true;
}

/** Every problem the ingress can answer with. Adding one here is the only way to add a status. */
export const PROBLEMS = {
  'malformed-json': { status: 400, title: 'Request body is not valid JSON' },
  'validation-failed': { status: 400, title: 'Request does not match the schema' },
  'idempotency-key-required': { status: 400, title: 'Idempotency-Key header is required' },
  unauthorized: { status: 401, title: 'Missing or invalid bearer token' },
  'not-found': { status: 404, title: 'No such resource' },
  'event-not-found': { status: 404, title: 'No such event' },
  'seat-not-found': { status: 404, title: 'No such seat' },
  'section-not-found': { status: 404, title: 'No such section' },
  'hold-not-found': { status: 404, title: 'No such hold' },
  'reservation-not-found': { status: 404, title: 'No such reservation' },
  'method-not-allowed': { status: 405, title: 'Method not allowed on this resource' },
  'seats-unavailable': { status: 409, title: 'Seats are not available', refusal: true },
  'hold-expired': { status: 409, title: 'Hold expired or was released', refusal: true },
  'hold-confirmed': { status: 409, title: 'Hold was already confirmed', refusal: true },
  'sale-not-open': { status: 409, title: 'The sale is not open', refusal: true },
  'idempotency-key-in-use': { status: 409, title: 'A request with this Idempotency-Key is still in progress' },
  'body-too-large': { status: 413, title: 'Request body is too large' },
  'unsupported-media-type': { status: 415, title: 'Request body must be application/json' },
  'unknown-inventory': { status: 422, title: 'Request names seats, sections or pools the event does not have' },
  'seats-span-shards': { status: 422, title: 'Seats of one hold must belong to the same inventory shard' },
  'limit-exceeded': { status: 422, title: 'Per-customer limit would be exceeded', refusal: true },
  'invalid-command': { status: 422, title: 'The inventory refused the command as invalid' },
  'idempotency-key-reused': { status: 422, title: 'Idempotency-Key was already used with a different request' },
  'too-many-requests': { status: 429, title: 'Too many requests for this event; retry later' },
  'internal-error': { status: 500, title: 'Internal error' },
  'shard-unavailable': { status: 503, title: 'Inventory shard temporarily unavailable; retry later' },
  'dependency-unavailable': { status: 503, title: 'A dependency is temporarily unavailable; retry later' },
} as const satisfies Record<string, ProblemKind>;

export type ProblemType = keyof typeof PROBLEMS;

/** The problem types by which the inventory refuses a command for good (`ProblemKind.refusal`). */
export const REFUSAL_TYPES: ReadonlySet<string> = new Set(
  Object.entries(PROBLEMS as Record<string, ProblemKind>).flatMap(([slug, kind]) => (kind.refusal ? [slug] : [])),
);

/** A pointer into the request (RFC 6901, into the body; `#/…` for headers/params) and what is wrong there. */
export interface ProblemFieldError {
  readonly pointer: string;
  readonly detail: string;
}

/**
 * An expected failure of a request, named by its problem type. Route code throws these; the error
 * middleware renders them. `extensions` are extra members of the problem document.
 */
export class HttpProblem extends SentinelError {
  readonly problem: ProblemType;
  readonly extensions: Readonly<Record<string, unknown>>;
  /** Seconds for `Retry-After`, for 409 in-flight, 429 and 503. */
  readonly retryAfterS: number | undefined;
  readonly headers: Readonly<Record<string, string>>;

  constructor(
    problem: ProblemType,
    detail: string,
    options: { extensions?: Record<string, unknown>; retryAfterS?: number; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(`http_${problem.replace(/-/g, '_')}`, detail, {
      retryable: PROBLEMS[problem].status >= 500 || problem === 'too-many-requests',
      cause: options.cause,
    });
    this.problem = problem;
    this.extensions = options.extensions ?? {};
    this.retryAfterS = options.retryAfterS;
    this.headers = options.headers ?? {};
  }
}

/** A shard's decision that was not a success (a loser, a limit, an unknown hold …). */
export class ShardRejection extends SentinelError {
  constructor(readonly result: Extract<ShardResult, { ok: false }>) {
    super(`shard_${result.type.replace(/-/g, '_')}`, result.message);
  }
}

/**
 * Builds an expected refusal without capturing a stack trace. A flash sale answers thousands of
 * losers a second; their stacks would never be read (expected problems are not logged with one),
 * and capturing them is a measurable share of the hot path.
 */
export function refusal<T extends Error>(build: () => T): T {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return build();
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** The problem document as sent (RFC 9457 members plus extensions). */
export interface ProblemDocument {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly detail: string;
  readonly requestId: string;
  readonly [extension: string]: unknown;
}

/** What the error middleware sends for an error. */
export interface RenderedProblem {
  readonly status: number;
  readonly body: ProblemDocument;
  readonly headers: Readonly<Record<string, string>>;
  /** True for 500s: the error is logged with its stack under the correlation id. */
  readonly unexpected: boolean;
}

/** Seconds a client should wait before retrying a 503. */
export const RETRY_AFTER_UNAVAILABLE_S = 1;

function render(
  problem: ProblemType,
  detail: string,
  requestId: string,
  extensions: Record<string, unknown> = {},
  headers: Record<string, string> = {},
  unexpected = false,
): RenderedProblem {
  const { status, title } = PROBLEMS[problem];
  return { status, body: { type: PROBLEM_BASE + problem, title, status, detail, requestId, ...extensions }, headers, unexpected };
}

function rejectionProblem(result: Extract<ShardResult, { ok: false }>, requestId: string): RenderedProblem {
  switch (result.type) {
    case 'unavailable':
      return render('seats-unavailable', result.message, requestId, { seats: result.seats });
    case 'limit-exceeded':
      return render('limit-exceeded', result.message, requestId, {
        limit: result.limit,
        current: result.current,
        requested: result.requested,
      });
    case 'hold-not-found':
      return render('hold-not-found', `no hold ${result.holdId} for this customer`, requestId);
    case 'hold-expired':
      return render('hold-expired', result.message, requestId, { holdId: result.holdId });
    case 'hold-confirmed':
      return render('hold-confirmed', result.message, requestId, { holdId: result.holdId, reservationId: result.reservationId });
    case 'invalid':
      return render('invalid-command', result.message, requestId, { errors: [{ pointer: `#/${result.field}`, detail: result.message }] });
    case 'idempotency-mismatch':
      return render('idempotency-key-reused', result.message, requestId);
    case 'not-serving':
      return render('shard-unavailable', result.message, requestId, {}, { 'Retry-After': String(RETRY_AFTER_UNAVAILABLE_S) });
  }
}

/** Errors koa and @koa/router raise themselves (http-errors): a status and whether it may be shown. */
function httpErrorStatus(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const status = (error as { status?: unknown }).status;
  const expose = (error as { expose?: unknown }).expose;
  return typeof status === 'number' && expose === true && status >= 400 && status < 500 ? status : undefined;
}

/**
 * The one place an error becomes an HTTP status. Expected conditions get their precise status;
 * retryable infrastructure trouble is a 503 with Retry-After; anything else is a 500 whose body
 * carries only the correlation id.
 */
export function problemOf(error: unknown, requestId: string): RenderedProblem {
  if (error instanceof HttpProblem) {
    const headers: Record<string, string> = { ...error.headers };
    if (error.retryAfterS !== undefined) headers['Retry-After'] = String(Math.max(1, Math.ceil(error.retryAfterS)));
    return render(error.problem, error.message, requestId, { ...error.extensions }, headers);
  }
  if (error instanceof ShardRejection) return rejectionProblem(error.result, requestId);
  const retry = { 'Retry-After': String(RETRY_AFTER_UNAVAILABLE_S) };
  if (error instanceof DeadlineError || error instanceof FencedError) {
    return render(
      'shard-unavailable',
      'the inventory shard did not answer in time; retry with the same Idempotency-Key',
      requestId,
      {},
      retry,
    );
  }
  if (error instanceof DependencyError) {
    return render('dependency-unavailable', `${error.code.replace(/_unavailable$/, '')} is unavailable; retry later`, requestId, {}, retry);
  }
  if (error instanceof ShardError && error.retryable) {
    return render('shard-unavailable', 'the inventory shard failed transiently; retry with the same Idempotency-Key', requestId, {}, retry);
  }
  const status = httpErrorStatus(error);
  if (status === 404) return render('not-found', 'no such resource', requestId);
  if (status === 405) {
    const allow = (error as { headers?: { Allow?: string } }).headers?.Allow;
    return render('method-not-allowed', 'method not allowed on this resource', requestId, {}, allow ? { Allow: allow } : {});
  }
  if (status === 413) return render('body-too-large', 'request body is too large', requestId);
  if (status === 415) return render('unsupported-media-type', 'request body must be application/json', requestId);
  if (status !== undefined) return render('validation-failed', 'bad request', requestId);
  return render('internal-error', `an unexpected error occurred; quote requestId ${requestId} when reporting it`, requestId, {}, {}, true);
}
