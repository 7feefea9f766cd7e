/** The human-readable verify report. */
import { formatLatency } from '../stress/format.js';
import type { VerifyReport } from './verify.js';

const int = (n: number) => n.toLocaleString('en-US');

function verdict(r: VerifyReport): string {
  const n = r.counts.violations;
  if (n > 0) return `FAILED — ${int(n)} violation${n === 1 ? '' : 's'}`;
  const unchecked = r.checks.filter((c) => c.unchecked).length;
  if (unchecked > 0) return `NOT CHECKED — no violation found, but ${unchecked} check${unchecked === 1 ? '' : 's'} could not be made`;
  return 'OK — every invariant holds';
}

export function formatVerifyReport(r: VerifyReport): string {
  const i = r.counts.inventory;
  const lines = [
    `verify ${r.event}: ${verdict(r)}`,
    `  seats       ${int(i.seats.total)} total · ${int(i.seats.sold)} sold · ${int(i.seats.held)} held · ${int(i.seats.available)} available`,
  ];
  if (i.pools.capacity > 0)
    lines.push(`  GA places   ${int(i.pools.capacity)} capacity · ${int(i.pools.sold)} sold · ${int(i.pools.held)} held`);
  lines.push(
    `  holds       ${int(i.holds.live)} live · ${int(i.holds.confirmed)} confirmed · ${int(i.holds.released)} released · ${int(i.holds.expired)} expired` +
      ` (expiry lag p99 ${int(i.expiry_lag_ms.p99)} ms, max ${int(i.expiry_lag_ms.max)} ms)`,
    `  reserved    ${int(i.reservations)} reservations · ${int(i.customers)} customers with holds · outbox ${int(i.outbox.rows)} rows, ${int(i.outbox.unpublished)} unpublished`,
    `  shards      ${i.shards.owned}/${i.shards.total} owned${i.pending_expiry ? ` · ${int(i.pending_expiry)} holds past TTL on shards no engine serves (expire on claim; not judged)` : ''}`,
  );
  const t = r.counts.topic;
  lines.push(
    t
      ? `  topic       ${int(t.messages)} messages · ${int(t.unique)} reservations · ${int(t.duplicates)} duplicates (deduped by key)${t.rechecked ? ` · ${int(t.rechecked)} checked after waiting for the relay` : ''}${t.malformed ? ` · ${int(t.malformed)} not JSON objects (passed over)` : ''}`
      : '  topic       not checked',
  );
  const l = r.counts.log;
  if (l) {
    lines.push(
      `  clients     ${int(l.lines)} logged answers · acknowledged ${int(l.acknowledged.holds)} holds, ${int(l.acknowledged.reservations)} reservations, ${int(l.acknowledged.releases)} releases · ${int(l.refused)} refused`,
      `  losers      ${l.loser_latency_ms.count === 0 ? 'no 409s' : `409 answered in ${formatLatency(l.loser_latency_ms)}`}`,
    );
  } else lines.push('  clients     no response log given (acknowledgement checks skipped)');
  lines.push('  checks');
  for (const c of r.checks) {
    const mark = c.skipped ? 'skip' : c.violations > 0 ? 'FAIL' : c.unchecked ? ' ?? ' : ' ok ';
    lines.push(`    [${mark}] inv.${c.invariant} ${c.description}${c.violations ? ` — ${int(c.violations)}` : ''}`);
  }
  if (r.not_checked.length > 0) {
    lines.push('  not checked');
    for (const why of r.not_checked) lines.push(`    ${why}`);
  }
  if (r.violations.length > 0) {
    lines.push('  violations');
    for (const v of r.violations) lines.push(`    ${v.check}: ${v.message}`);
  }
  return lines.join('\n') + '\n';
}
