/**
 * The processes a job starts through LocalStack (chaos, the benchmarks, these tests) belong to that
 * job: a Ctrl-C in its terminal — SIGINT to the terminal's whole process group — is for the job,
 * and a job that dies, even by SIGKILL, leaves none of them behind. Real processes: a parent job
 * (test/support/local-stack-parent.ts) starting a real ingress against the local infrastructure.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { PARENT_POLL_MS } from '../../../src/cli/signals.js';

const PARENT = fileURLToPath(new URL('../../support/local-stack-parent.ts', import.meta.url));

/** The process group of a running process (field 5 of /proc/<pid>/stat, after the command's parentheses). */
function processGroup(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(what: string, check: () => boolean, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return Date.now() - started;
}

t.test("a job's Ctrl-C is not its processes', and they do not outlive the job", async (t) => {
  // The parent job leads a process group of its own, as a job started from a terminal does — so
  // the SIGINT below, sent to that whole group, is what a Ctrl-C would send, and reaches no test.
  const parent = spawn(process.execPath, ['--import=tsx', PARENT], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
  t.teardown(() => {
    if (parent.exitCode === null && parent.signalCode === null) parent.kill('SIGKILL');
  });
  const lines = createInterface({ input: parent.stdout! });
  const output: string[] = [];
  const ingressPid = await new Promise<number>((resolve, reject) => {
    parent.once('exit', (code) => reject(new Error(`the parent job exited (${code}) before its ingress was ready`)));
    lines.on('line', (line) => {
      output.push(line);
      const started = /^\{"ingressPid":(\d+)\}$/.exec(line);
      if (started) resolve(Number(started[1]));
    });
  });
  t.teardown(() => {
    if (alive(ingressPid)) process.kill(ingressPid, 'SIGKILL');
  });

  t.not(processGroup(ingressPid), processGroup(parent.pid!), 'the ingress runs in a process group of its own');
  process.kill(-parent.pid!, 'SIGINT');
  await new Promise((resolve) => setTimeout(resolve, 4 * PARENT_POLL_MS));
  t.ok(alive(ingressPid), "the terminal's SIGINT did not reach the ingress");
  t.notOk(
    output.some((line) => line.includes('Shutting down ingress')),
    'the ingress did not start shutting down',
  );

  parent.kill('SIGKILL');
  const took = await until('the ingress exits after its parent was killed', () => !alive(ingressPid), 15_000);
  t.pass(`the ingress exited ${took} ms after its parent was killed`);
});
