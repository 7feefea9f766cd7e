/** What a customer id may be: the JWT subject the ingress accepts, and what a shard decides for. */

/** Longest customer id. */
export const MAX_CUSTOMER_LENGTH = 256;

/** What a customer id may be, in words: for the messages of whatever refuses one. */
export const CUSTOMER_ID_RULE = `1-${MAX_CUSTOMER_LENGTH} characters, none a control character`;

/** Half of a surrogate pair without its other half (a regular expression's source). */
const LONE_SURROGATE = '[\\ud800-\\udbff](?![\\udc00-\\udfff])|(?<![\\ud800-\\udbff])[\\udc00-\\udfff]';

/** A control character (C0, DEL, C1) or a lone surrogate. */
const UNPRINTABLE = new RegExp(`[\\u0000-\\u001f\\u007f-\\u009f]|${LONE_SURROGATE}`);

/** NUL or a lone surrogate: what a jsonb value cannot hold. */
const UNSTORABLE = new RegExp(`\\u0000|${LONE_SURROGATE}`);

/**
 * Whether `value` can go into the shard's commit: a JSON document Postgres reads as jsonb, which
 * refuses NUL and lone surrogates — one such string would fail the whole group commit of every
 * command with it, and stop the shard, again at every retry. What a shard stores of a command
 * (its customer, its idempotency key) must pass this.
 */
export function isStorableText(value: string): boolean {
  return !UNSTORABLE.test(value);
}

/**
 * Whether `value` may be a customer id: 1-MAX_CUSTOMER_LENGTH characters, none of them a control
 * character or a lone surrogate (so it is storable: see `isStorableText`). The ingress refuses such
 * a token (401); a shard refuses such a command (invalid) all the same.
 */
export function isCustomerId(value: unknown): value is string {
  return typeof value === 'string' && value !== '' && value.length <= MAX_CUSTOMER_LENGTH && !UNPRINTABLE.test(value);
}
