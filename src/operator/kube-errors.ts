/**
 * Kubernetes API failures, translated into the project's errors. A reconcile that hits a retryable
 * one is requeued with backoff; a terminal one (the API server refused what we sent) is reported on
 * the object and not retried until something changes.
 */
import { DependencyError, SentinelError } from '../errors.js';

/** The API server refused a request for a reason retrying cannot fix (422 Invalid, 400 BadRequest). */
export class KubernetesRejectedError extends SentinelError {
  readonly status: number;
  constructor(message: string, status: number, cause?: unknown) {
    super('kubernetes_rejected', message, { retryable: false, cause });
    this.status = status;
  }
}

/**
 * The API server forbids the request (HTTP 403): RBAC, a ResourceQuota, an admission webhook.
 * Retried (a quota frees up, RBAC is fixed), but reported as such, not as Kubernetes unavailable.
 */
export class KubernetesForbiddenError extends SentinelError {
  constructor(message: string, cause?: unknown) {
    super('kubernetes_forbidden', message, { retryable: true, cause });
  }
}

/** Someone else changed the object since it was read (HTTP 409): read it again and retry. */
export class KubernetesConflictError extends SentinelError {
  constructor(message: string, cause?: unknown) {
    super('kubernetes_conflict', message, { retryable: true, cause });
  }
}

/** HTTP status of a client-node failure, if it has one. */
export function statusCodeOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const e = error as { code?: unknown; statusCode?: unknown; status?: unknown };
  for (const value of [e.code, e.statusCode, e.status]) if (typeof value === 'number' && value >= 100 && value < 600) return value;
  return undefined;
}

export const isNotFound = (error: unknown): boolean => statusCodeOf(error) === 404;
export const isConflict = (error: unknown): boolean => error instanceof KubernetesConflictError || statusCodeOf(error) === 409;

/** The API server's own explanation (its Status message), or the error's message. */
export function kubernetesMessage(error: unknown): string {
  const body = (error as { body?: unknown } | null)?.body;
  let parsed: unknown = body;
  if (typeof body === 'string') {
    try {
      parsed = JSON.parse(body);
    } catch {
      parsed = undefined;
    }
  }
  const message = (parsed as { message?: unknown } | undefined)?.message;
  if (typeof message === 'string' && message !== '') return message;
  return error instanceof Error ? error.message : String(error);
}

/** Translates a client-node failure of `what` into a SentinelError (already-translated errors pass through). */
export function translateKubernetesError(error: unknown, what: string): SentinelError {
  if (error instanceof SentinelError) return error;
  const status = statusCodeOf(error);
  const message = `${what}: ${kubernetesMessage(error)}`;
  if (status === 409) return new KubernetesConflictError(message, error);
  if (status === 403) return new KubernetesForbiddenError(`${message} (HTTP 403: RBAC, a quota or an admission webhook refuses it)`, error);
  if (status === 400 || status === 422) return new KubernetesRejectedError(message, status, error);
  return new DependencyError('kubernetes', status === undefined ? message : `${message} (HTTP ${status})`, error);
}
