/**
 * Durations as people type them: `500ms`, `1.5s`, `2m`, `1h`, `7d`. One reading for every flag and
 * option that takes one; each caller words its own errors and bounds. A bare number is read in the
 * unit the caller names — or refused, where the same flag once meant another unit and a number
 * written with that one in mind must not be silently read the other way (the operator's flags).
 */
export type DurationUnit = 'ms' | 's' | 'm' | 'h' | 'd';

const UNIT_MS: Readonly<Record<DurationUnit, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * What `parseDuration` made of the text: milliseconds, or why not. `exact`: the text names exactly
 * `ms` milliseconds (`1.0004s` is rounded to 1000 ms, not exact).
 */
export type ParsedDuration = { readonly ms: number; readonly exact: boolean } | { readonly error: 'bare' | 'form' };

/**
 * `text` in milliseconds (rounded), in `units` only. A bare number is in `bare`, or an error
 * 'bare' when `bare` is undefined; anything else unreadable (a sign, another unit) is 'form'.
 */
export function parseDuration(text: string, options: { bare?: DurationUnit; units: readonly DurationUnit[] }): ParsedDuration {
  const match = /^(\d+(?:\.\d+)?)([a-z]*)$/.exec(text.trim());
  if (match === null) return { error: 'form' };
  const written = match[2] as DurationUnit | '';
  if (written === '' && options.bare === undefined) return { error: 'bare' };
  const unit = written === '' ? options.bare! : written;
  if (!options.units.includes(unit)) return { error: 'form' };
  const ms = Math.round(Number(match[1]) * UNIT_MS[unit]);
  // Exactness from the digits, not the float: the fraction times the unit is a whole number of
  // milliseconds, e.g. 0.0004 s = 4 × 1000 / 10⁴ ms is not, 1.5 h is.
  const fraction = match[1]!.split('.')[1] ?? '';
  const exact = (BigInt(fraction === '' ? 0 : fraction) * BigInt(UNIT_MS[unit])) % 10n ** BigInt(fraction.length) === 0n;
  return { ms, exact };
}
