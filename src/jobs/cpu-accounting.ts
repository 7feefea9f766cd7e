/**
 * CPU time by component, from Linux's /proc: which process (and its children) burned how much CPU
 * during a benchmark run. On a 2-core machine shared by the load client and every server, this is
 * what explains a throughput figure — and where to look to raise it. Returns nothing elsewhere.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ; 100 on Linux for decades). */
const TICKS_PER_S = 100;

interface ProcStat {
  readonly ppid: number;
  /** utime + stime + cutime + cstime, in ticks: reaped children's time moves to their parent, so a tree's total survives processes exiting. */
  readonly ticks: number;
}

function readStats(): Map<number, ProcStat> {
  const stats = new Map<number, ProcStat>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return stats;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const text = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Fields after the command name (which may contain spaces) start at the last ')'.
      const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
      const ticks = Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
      stats.set(Number(entry), { ppid: Number(fields[1]), ticks });
    } catch {
      // the process ended while we looked
    }
  }
  return stats;
}

/** CPU seconds used so far by each group: its root processes and all their descendants. */
export function cpuSeconds(groups: Readonly<Record<string, readonly number[]>>): Record<string, number> {
  const stats = readStats();
  const children = new Map<number, number[]>();
  for (const [pid, s] of stats) {
    const list = children.get(s.ppid);
    if (list) list.push(pid);
    else children.set(s.ppid, [pid]);
  }
  const out: Record<string, number> = {};
  for (const [group, roots] of Object.entries(groups)) {
    let ticks = 0;
    const seen = new Set<number>();
    const stack = [...roots];
    while (stack.length > 0) {
      const pid = stack.pop()!;
      if (seen.has(pid)) continue;
      seen.add(pid);
      ticks += stats.get(pid)?.ticks ?? 0;
      stack.push(...(children.get(pid) ?? []));
    }
    out[group] = ticks / TICKS_PER_S;
  }
  return out;
}

/** `after - before`, per group. */
export function cpuDelta(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.keys(after).map((k) => [k, Math.round(((after[k] ?? 0) - (before[k] ?? 0)) * 100) / 100]));
}

/**
 * The local infrastructure's processes by service (`hack/infra.sh status --json` under `root`),
 * without the Kubernetes API server, which no benchmark exercises; empty when it cannot be asked.
 */
export function localServicePids(root: string): Record<string, number[]> {
  try {
    const status = JSON.parse(execFileSync('bash', [join(root, 'hack/infra.sh'), 'status', '--json'], { encoding: 'utf8' })) as {
      services: { name: string; pid: number | null }[];
    };
    return Object.fromEntries(status.services.filter((x) => x.pid !== null && x.name !== 'kube').map((x) => [x.name, [x.pid!]]));
  } catch {
    return {};
  }
}

/** CPU seconds used by this process so far (user + system). */
export function ownCpuSeconds(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}
