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

/** A request to a shard did not complete within its deadline. */
export class DeadlineError extends SentinelError {
  constructor(message: string, cause?: unknown) {
    super('deadline_exceeded', message, { retryable: true, cause });
  }
}
