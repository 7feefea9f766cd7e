/**
 * untilSignal in real processes: what stops a long-running command, with and without an owner
 * (SENTINEL_EXIT_WITH_PARENT). Each case runs a small Node process that waits with untilSignal and
 * prints the cue it stopped on.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const SIGNALS = fileURLToPath(new URL('../../../src/cli/signals.ts', import.meta.url));

/**
 * Starts a process waiting on untilSignal({ exitWithParent: owner }) — with the CLI's own SIGINT
 * handler when it has an owner (main.ts) — and resolves once it waits; `cue` is what it stopped on.
 */
async function waiter(owner: number | 'parent'): Promise<{ pid: number; cue: Promise<string> }> {
  const script = `
    import { untilSignal } from ${JSON.stringify(SIGNALS)};
    const owner = ${JSON.stringify(owner)} === 'parent' ? process.ppid : ${JSON.stringify(owner)};
    if (owner > 0) process.on('SIGINT', () => undefined);
    const stop = untilSignal({ exitWithParent: owner });
    const keepAlive = setInterval(() => undefined, 1000);
    console.log('waiting');
    console.log(await stop);
    clearInterval(keepAlive);`;
  const child = spawn(process.execPath, ['--import=tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const cue = once(child, 'close').then(() => output.replace('waiting\n', '').trim());
  await Promise.race([cue, new Promise<void>((resolve) => child.stdout.on('data', () => output.includes('waiting\n') && resolve()))]);
  return { pid: child.pid!, cue };
}

t.test('without an owner: SIGINT and SIGTERM stop it', async (t) => {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    const w = await waiter(0);
    process.kill(w.pid, signal);
    t.equal(await w.cue, signal);
  }
});

t.test('with an owner: SIGTERM and SIGHUP stop it, SIGINT is left to the owner', async (t) => {
  for (const signal of ['SIGTERM', 'SIGHUP'] as const) {
    const w = await waiter('parent');
    process.kill(w.pid, signal);
    t.equal(await w.cue, signal);
  }
  const w = await waiter('parent');
  process.kill(w.pid, 'SIGINT');
  await new Promise((resolve) => setTimeout(resolve, 300));
  process.kill(w.pid, 'SIGTERM');
  t.equal(await w.cue, 'SIGTERM', 'the SIGINT before did not stop it');
});

t.test('with an owner that is not (or no longer) its parent: it stops at once', async (t) => {
  // The job died while this process was starting: its parent is already someone else.
  const w = await waiter(process.pid + 1_000_000);
  t.equal(await w.cue, 'parent-exited');
});
