/** Human-readable output of a stress run: the live progress line and the closing summary. */
import type { LatencySummary } from './histogram.js';
import type { StressProgress, StressReport } from './stress.js';

const int = (n: number) => Math.round(n).toLocaleString('en-US');
const ms = (n: number) => (n >= 100 ? `${Math.round(n)} ms` : `${n.toFixed(n >= 10 ? 1 : 2)} ms`);

/** `p50 1.20 ms · p90 … · max …` */
export function formatLatency(l: LatencySummary): string {
  if (l.count === 0) return '—';
  return `p50 ${ms(l.p50)} · p90 ${ms(l.p90)} · p99 ${ms(l.p99)} · p99.9 ${ms(l.p999)} · max ${ms(l.max)}`;
}

function counts(record: Record<string, number>, label: (key: string) => string = (k) => k): string {
  const entries = Object.entries(record);
  return entries.length === 0 ? '—' : entries.map(([k, v]) => `${label(k)} ${int(v)}`).join(' · ');
}

/** One line, rewritten in place on a terminal. */
export function formatProgress(p: StressProgress): string {
  const statuses = counts(p.statuses, (k) => (k === '0' ? 'net' : k));
  return (
    `[${p.elapsedS.toFixed(1).padStart(5)}s] ${int(p.requests)} req · ${int(p.recentRps)}/s · p99 ${ms(p.p99Ms)} · ${statuses} · ` +
    `buyers ${int(p.buyersDone)}/${int(p.buyersPlanned)} done, ${int(p.inFlight)} in flight`
  );
}

/** The closing summary. */
export function formatStressReport(r: StressReport): string {
  const mode =
    r.mode === 'closed'
      ? `closed loop, concurrency ${int(r.concurrency)}`
      : `open loop, ${int(r.rate ?? 0)} buyers/s, at most ${int(r.concurrency)} in flight`;
  const lines = [
    `stress ${r.scenario} on ${r.event} (${mode}, seed ${r.seed}, run ${r.run_id})${r.aborted ? ' — stopped early' : ''}`,
    `  buyers      ${int(r.buyers.planned)} planned, ${int(r.buyers.started)} started${r.buyers.shed ? `, ${int(r.buyers.shed)} shed` : ''}; ${counts(r.buyers.outcomes)}`,
    `  requests    ${int(r.requests)} in ${r.duration_s.toFixed(2)} s = ${int(r.throughput_rps)} req/s (${int(r.retries)} retries)` +
      (r.cut > 0 ? `; ${int(r.cut)} more cut short by the run itself (not counted)` : ''),
    `  latency     ${formatLatency(r.latency_ms)}`,
    ...Object.entries(r.latency_by_op_ms).map(([op, l]) => `    ${op.padEnd(10)}${int(l.count).padStart(9)}  ${formatLatency(l)}`),
    `  losers      ${r.loser_latency_ms.count === 0 ? 'no 409s' : `${int(r.loser_latency_ms.count)} × 409 answered in ${formatLatency(r.loser_latency_ms)}`}`,
    ...(r.schedule_lag_ms === undefined
      ? []
      : [`  arrivals    sent late by ${formatLatency(r.schedule_lag_ms)} (add to latency for the buyer's view)`]),
    `  by status   ${counts(r.status, (k) => (k === '0' ? 'no answer' : k))}`,
    `  errors      ${counts(r.errors)}`,
    `  sold        ${int(r.seats_sold)} seats, ${int(r.places_sold)} GA places`,
  ];
  if (r.log) lines.push(`  log         ${r.log}  (sentinel verify --event ${r.event} --log ${r.log})`);
  return lines.join('\n') + '\n';
}
