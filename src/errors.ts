/**
 * The project's one error base: every failure Sentinel raises carries a stable `code`, whether a
 * retry can succeed (`retryable`), and the underlying `cause`. HTTP status is decided in exactly
 * one place (the ingress error middleware), never here.
 */
export class SentinelError extends Error {
  readonly code: string;
  readonly retryable: boolean;

  constructor(code: string, message: string, options: { retryable?: boolean; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = options.retryable ?? false;
  }
}

/** Configuration that cannot be used: missing or malformed environment variables. */
export class ConfigError extends SentinelError {
  constructor(message: string) {
    super('config_invalid', message);
  }
}

/** A dependency (Postgres, Redis, NATS, Kafka, Kubernetes) is unreachable or failed; retry later. */
export class DependencyError extends SentinelError {
  constructor(dependency: string, message: string, cause?: unknown) {
    super(`${dependency}_unavailable`, message, { retryable: true, cause });
  }
}

/** This process no longer owns the shard: its epoch was superseded or its lease was lost. */
export class FencedError extends SentinelError {
  constructor(message: string, cause?: unknown) {
    super('fenced', message, { retryable: true, cause });
  }
}

/**
 * A commit found a row it writes — a seat, pool or hold — changed underneath (not at the version or
 * state the shard last saw) while the shard's epoch was still its own: nobody took the shard over,
 * but its memory and Postgres disagree (a write from outside the engine, a bug; or a commit whose
 * answer was lost that landed after all, which ShardCommits reports as an outcome not known). A
 * FencedError, so it is handled as one — the shard stops and is rebuilt from Postgres, its callers
 * retry — with a code of its own, so that it is logged and counted apart: a fence is routine (a
 * take-over), this is not.
 */
export class VersionConflictError extends FencedError {
  override readonly code = 'version_conflict';
}

/** A request to a shard did not complete within its deadline. */
export class DeadlineError extends SentinelError {
  constructor(message: string, cause?: unknown) {
    super('deadline_exceeded', message, { retryable: true, cause });
  }
}

/**
 * An error in one line, for a message or a report: its message — an AggregateError's inner ones
 * when it has none (a connection refused on every address of a host) — its lines joined.
 */
export function errorLine(error: unknown): string {
  const text = (e: unknown): string => {
    if (e instanceof AggregateError && e.errors.length > 0) {
      const inner = [...new Set(e.errors.map(text))].join('; ');
      return e.message ? `${e.message}: ${inner}` : inner;
    }
    if (e instanceof Error) return e.message || String((e as { code?: unknown }).code ?? e.name);
    return String(e);
  };
  return (
    text(error)
      .trim()
      .replace(/\s*\n\s*/g, ' ') || 'an error without a message'
  );
}
