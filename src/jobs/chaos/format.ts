/** The human-readable chaos report: each fault with its time and effect, the load, the verdict. */
import { formatStressReport } from '../stress/format.js';
import { formatVerifyReport } from '../verify/format.js';
import { EXIT } from '../verify/verify.js';
import { chaosExitCode, type ChaosReport, type FaultResult } from './chaos.js';

const int = (n: number) => n.toLocaleString('en-US');

/** One fault, as printed while the run goes and in the report. */
export function formatFault(f: FaultResult, withEffect: boolean): string {
  const head = `t+${f.at_s.toFixed(1).padStart(5)}s  ${f.kind.padEnd(16)} ${f.error ? `FAILED: ${f.error} — ${f.detail}` : f.detail}`;
  if (!withEffect) return head;
  const e = f.effect;
  const noticed =
    e.failed === 0 ? 'clients saw no failures' : `${int(e.failed)} failed attempts, disruption ${e.disruption_s.toFixed(1)} s`;
  return `${head}\n${' '.repeat(26)}→ until the next fault: ${int(e.ok)} ok · ${int(e.refused)} refused · ${int(e.throttled)} throttled · ${noticed}`;
}

export function formatChaosReport(r: ChaosReport): string {
  // Without the load's report (it failed) what clients saw of each fault was not measured.
  const measured = r.stress !== null;
  const verdict = r.ok ? 'PASSED' : chaosExitCode(r) === EXIT.notChecked ? 'NOT JUDGED' : 'FAILED';
  const lines = [
    `chaos on ${r.event}: ${r.faults.length} fault${r.faults.length === 1 ? '' : 's'} during the load, then verify — ${verdict}`,
    '',
    'faults',
    ...(r.faults.length === 0
      ? ['  none injected by this run']
      : r.faults.map((f) => `  ${formatFault(f, measured).replace(/\n/g, '\n  ')}`)),
    ...r.skipped.map((f) => `  t+${f.planned_at_s.toFixed(1).padStart(5)}s  ${f.kind.padEnd(16)} NOT RUN: ${f.reason}`),
    `  after the load every shard was owned by a live engine ${r.recovery_s === null ? 'NOT within the timeout' : `within ${r.recovery_s} s`}`,
    `  disruptions seen by clients: ${
      r.disruptions.length === 0
        ? 'none'
        : r.disruptions.map((d) => `t+${d.from_s.toFixed(1)}–${d.to_s.toFixed(1)} s (${int(d.failed)} failed)`).join(', ')
    }`,
    '',
    r.stress === null ? 'load: FAILED (no report; see below)' : formatStressReport({ ...r.stress, timeline: [] }).trimEnd(),
    '',
    r.verify === null ? `verify ${r.event}: NOT MADE (see below)` : formatVerifyReport(r.verify).trimEnd(),
    ...(r.unmet.length === 0 ? [] : ['', 'not a pass, whatever verify says:', ...r.unmet.map((u) => `  ${u}`)]),
  ];
  return lines.join('\n') + '\n';
}
