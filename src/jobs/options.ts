/** Parsers for the command-line values the jobs share: durations, ranges, counts, probabilities. */
import { parseDuration, type DurationUnit } from '../duration.js';
import { SentinelError } from '../errors.js';

/**
 * A command-line value that cannot be used; the message names the flag. The jobs' commands answer
 * it with exit 2 (bad usage) and nothing loaded, checked or broken.
 */
export class UsageError extends SentinelError {
  constructor(message: string, code = 'usage') {
    super(code, message);
  }
}

/**
 * The event a job was pointed at does not exist (`where`: in the database, at an ingress) — a
 * mistyped `--event` is bad usage (exit 2), not a violation or a crash.
 */
export class UnknownEventError extends UsageError {
  constructor(eventId: string, where = 'in the database') {
    super(`no event ${eventId} ${where}`, 'unknown_event');
  }
}

/** `500ms`, `15s`, `2m`, `1h` or a bare number of seconds → milliseconds. */
export function parseDurationMs(text: string, flag: string): number {
  const parsed = parseDuration(text, { bare: 's', units: ['ms', 's', 'm', 'h'] });
  if ('error' in parsed) throw new UsageError(`--${flag} must be a duration like 500ms, 30s, 2m (got ${JSON.stringify(text)})`);
  return parsed.ms;
}

/** An integer in [min, max]. */
export function parseInteger(text: string, flag: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const value = Number(text.replace(/_/g, ''));
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new UsageError(`--${flag} must be an integer in [${min}, ${max}] (got ${JSON.stringify(text)})`);
  }
  return value;
}

/** A number in [min, max]. */
export function parseNumber(text: string, flag: string, min: number, max: number): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value < min || value > max)
    throw new UsageError(`--${flag} must be a number in [${min}, ${max}] (got ${JSON.stringify(text)})`);
  return value;
}

/** `N` or `MIN-MAX` (integers) → an inclusive range. */
export function parseRange(text: string, flag: string, min: number): { min: number; max: number } {
  const match = /^(\d+)(?:-(\d+))?$/.exec(text.trim());
  if (match === null) throw new UsageError(`--${flag} must be N or MIN-MAX (got ${JSON.stringify(text)})`);
  const low = Number(match[1]);
  const high = match[2] === undefined ? low : Number(match[2]);
  if (low < min || high < low) throw new UsageError(`--${flag}: need ${min} ≤ MIN ≤ MAX (got ${JSON.stringify(text)})`);
  return { min: low, max: high };
}

/** `N`, `MIN-MAX` with an optional unit (`200-1000ms`, `1-2s`) → a range of milliseconds. */
export function parseDurationRange(text: string, flag: string): { min: number; max: number } {
  const usage = () => new UsageError(`--${flag} must be like 500ms or 200-1000ms (got ${JSON.stringify(text)})`);
  const match = /^(\d+(?:\.\d+)?)(?:-(\d+(?:\.\d+)?))?(ms|s|m)?$/.exec(text.trim());
  if (match === null) throw usage();
  // Each bound is a bare number in the range's one unit.
  const unit: DurationUnit = (match[3] as DurationUnit | undefined) ?? 'ms';
  const bound = (digits: string) => {
    const parsed = parseDuration(digits, { bare: unit, units: [unit] });
    if ('error' in parsed) throw usage();
    return parsed.ms;
  };
  const low = bound(match[1]!);
  const high = match[2] === undefined ? low : bound(match[2]);
  if (high < low) throw new UsageError(`--${flag}: the range must not be decreasing (got ${JSON.stringify(text)})`);
  return { min: low, max: high };
}

/** One of `choices`. */
export function parseChoice<T extends string>(text: string, flag: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(text))
    throw new UsageError(`--${flag} must be one of ${choices.join(', ')} (got ${JSON.stringify(text)})`);
  return text as T;
}

/** A short random id for runs: customers and Idempotency-Keys of a run are derived from it. */
export function newRunId(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}${Math.floor(Math.random() * 36 ** 4)
    .toString(36)
    .padStart(4, '0')}`;
}
