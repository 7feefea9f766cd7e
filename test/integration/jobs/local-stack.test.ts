/**
 * The processes a job starts through LocalStack (chaos, the benchmarks, these tests) belong to that
 * job: a Ctrl-C in its terminal — SIGINT to the terminal's whole process group — is for the job,
 * and a job that dies, even by SIGKILL, leaves none of them behind. Real processes: a parent job
 * (test/support/local-stack-parent.ts) starting two real ingresses against the local
 * infrastructure. (One the job had stopped with SIGSTOP is left to the kernel, which sends a
 * stopped member of a process group that loses its job SIGHUP and SIGCONT; that needs a shell
 * with job control, i.e. a terminal, to arrange, and signals.test.ts shows SIGHUP stops it.)
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { PARENT_POLL_MS } from '../../../src/cli/signals.js';

const PARENT = fileURLToPath(new URL('../../support/local-stack-parent.ts', import.meta.url));

/** A process's state letter and process group (/proc/<pid>/stat, after the command's parentheses). */
function stat(pid: number): { state: string; group: number } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const [state, , group] = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: state!, group: Number(group) };
}

/** Running, sleeping or stopped — not gone, and not a zombie nobody has reaped yet. */
const alive = (pid: number) => {
  const state = stat(pid)?.state;
  return state !== undefined && state !== 'Z' && state !== 'X';
};

async function until(what: string, check: () => boolean, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return Date.now() - started;
}

t.test("a job's Ctrl-C is not its processes', and none of them outlives the job", async (t) => {
  const logDir = mkdtempSync(join(tmpdir(), 'local-stack-test-'));
  // The job leads a process group of its own, as a job a shell starts from a terminal does: the
  // SIGINT below, sent to that group, is what a Ctrl-C would send, and reaches no test.
  const parent = spawn(process.execPath, ['--import=tsx', PARENT, logDir], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
  const pids: number[] = [];
  t.teardown(() => {
    for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
  });
  const lines = createInterface({ input: parent.stdout! });
  const [job, ...ingresses] = await new Promise<number[]>((resolve, reject) => {
    parent.once('exit', (code) => reject(new Error(`the job exited (${code}) before its ingresses were ready`)));
    lines.on('line', (line) => {
      const started = /^\{"job":(\d+),"ingressPids":\[(\d+),(\d+)\]\}$/.exec(line);
      if (started) resolve(started.slice(1).map(Number));
    });
  });
  pids.push(job!, ...ingresses);

  t.same(
    ingresses.map((pid) => stat(pid)?.group),
    [job, job],
    "the ingresses are in the job's process group",
  );
  process.kill(-job!, 'SIGINT');
  await new Promise((resolve) => setTimeout(resolve, 4 * PARENT_POLL_MS));
  ingresses.forEach((pid, i) => {
    t.ok(alive(pid), `ingress ${pid} is still running after the Ctrl-C`);
    t.notMatch(readFileSync(join(logDir, `ingress-${i + 1}.log`), 'utf8'), /Shutting down ingress/, 'and did not start shutting down');
  });

  process.kill(job!, 'SIGKILL');
  const took = await until('the ingresses exit after their job was killed', () => !ingresses.some(alive), 20_000);
  t.pass(`they exited ${took} ms after their job was killed`);
});
