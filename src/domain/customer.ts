/** What a customer id may be: the JWT subject the ingress accepts, and what a shard decides for. */

/** Longest customer id. */
export const MAX_CUSTOMER_LENGTH = 256;

/** What a customer id may be, in words: for the messages of whatever refuses one. */
export const CUSTOMER_ID_RULE = `1-${MAX_CUSTOMER_LENGTH} characters, none a control character`;

/** A control character (C0, DEL, C1) or half of a surrogate pair without its other half. */
// eslint-disable-next-line no-control-regex -- control characters are what it looks for
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * Whether `value` may be a customer id: 1-MAX_CUSTOMER_LENGTH characters, none of them a control
 * character or a lone surrogate. The customer goes into the shard's commit, a JSON document
 * Postgres reads as jsonb — which refuses NUL and lone surrogates: one such customer would fail the
 * whole group commit of every customer with it, and stop the shard, again at every retry. The
 * ingress refuses such a token (401); a shard refuses such a command (invalid) all the same.
 */
export function isCustomerId(value: unknown): value is string {
  return typeof value === 'string' && value !== '' && value.length <= MAX_CUSTOMER_LENGTH && !UNPRINTABLE.test(value);
}
