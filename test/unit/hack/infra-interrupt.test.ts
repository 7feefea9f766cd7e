/**
 * hack/infra.sh under signals, for real but in isolation: bash runs the real script with its state,
 * cache and ports pointed into a scratch directory, and slow fakes of go, mvn and apt-get first on
 * PATH (they ignore SIGINT, as tools started in the background of a non-interactive shell do, and run
 * a child process, as go build runs compilers). A Ctrl-C (SIGINT to the process group), or a SIGTERM
 * or SIGHUP to infra.sh alone, must stop the install within seconds, leave none of those processes
 * running and nothing half-built in the cache; hack/test.sh and hack/demo.sh must stop with it (they
 * run against a stand-in infra.sh: a real `up` of every service would install system packages). No
 * network, no real service or cache is touched: nothing is started, the run ends during an install.
 */
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';

const HACK = fileURLToPath(new URL('../../../hack/', import.meta.url));
const INFRA = join(HACK, 'infra.sh');

/** Logs `<tool> <pid> <pgid> <args>`, then a `child <pid>` line once its slow child runs. */
const FAKE_PROLOGUE = `#!/usr/bin/env bash
trap '' INT
name=\${0##*/}
read -r _ _ _ _ pgid _ </proc/$$/stat
echo "$name $$ $pgid $*" >>"$FAKE_LOG"
slow() { sleep "\${FAKE_SECONDS:-60}" & echo "child $! $name" >>"$FAKE_LOG"; wait $!; }
`;

const FAKES: Record<string, string> = {
  // go build -o OUT / go install (GOBIN): with FAKE_GO_COPY the output exists, executable and
  // incomplete, while it builds, as when go install copies a binary across file systems.
  go: `${FAKE_PROLOGUE}
[[ "\${1:-}" == list ]] && exit 0
out=""; prev=""
for a in "$@"; do [[ "$prev" == -o ]] && out=$a; prev=$a; done
[[ -n "$out" ]] || out="$GOBIN/nats-server"
[[ -z "\${FAKE_GO_COPY:-}" ]] || { printf '#!/bin/sh\\n# truncated\\n' >"$out"; chmod +x "$out"; }
slow
printf '#!/bin/sh\\nexit 1\\n' >"$out"; chmod +x "$out"
`,
  // mvn dependency:copy-dependencies -DoutputDirectory=DIR: a jar half downloaded, then the rest.
  mvn: `${FAKE_PROLOGUE}
for a in "$@"; do [[ "$a" == -DoutputDirectory=* ]] && out=\${a#*=}; done
mkdir -p "$out"; : >"$out/kafka-clients-4.1.1.jar"
slow
: >"$out/kafka_2.13-4.1.1.jar"
`,
  // Never installs anything: slow, then fails.
  'apt-get': `${FAKE_PROLOGUE}
slow
exit 1
`,
  npx: `#!/usr/bin/env bash
echo "npx $*" >>"$FAKE_LOG"
`,
};

/** A stand-in for hack/infra.sh, for test.sh and demo.sh: `up` takes long (or exits STUB_INFRA_EXIT). */
const STUB_INFRA = `#!/usr/bin/env bash
echo "infra $*" >>"$FAKE_LOG"
[[ "\${1:-}" == up ]] || { echo 'export SENTINEL_STUB=1'; exit 0; }
sleep 60 & child=$!
echo "child $child infra" >>"$FAKE_LOG"
trap 'echo "infra got TERM" >>"$FAKE_LOG"; kill $child; exit 143' TERM
if [[ -n "\${STUB_INFRA_EXIT:-}" ]]; then kill $child; exit "$STUB_INFRA_EXIT"; fi
wait $child
`;

interface Sandbox {
  dir: string;
  cache: string;
  state: string;
  log: string;
  env: NodeJS.ProcessEnv;
}

function sandbox(t: Test): Sandbox {
  const dir = mkdtempSync(join(tmpdir(), 'infra-interrupt-'));
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  for (const [name, script] of Object.entries(FAKES)) {
    writeFileSync(join(bin, name), script);
    chmodSync(join(bin, name), 0o755);
  }
  const cache = join(dir, 'cache');
  const state = join(dir, 'state');
  const log = join(dir, 'fake.log');
  writeFileSync(log, '');
  // Nothing of the caller's setup (npm test exports the real SENTINEL_STATE_DIR), ports no one uses.
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SENTINEL_')));
  const base = 30000 + Math.floor(Math.random() * 3000) * 10;
  const ports = ['PG', 'REDIS', 'NATS', 'NATS_MONITOR', 'KAFKA', 'KAFKA_CONTROLLER', 'ETCD', 'ETCD_PEER', 'KUBE'];
  ports.forEach((p, i) => (env[`SENTINEL_${p}_PORT`] = String(base + i)));
  Object.assign(env, {
    PATH: `${bin}:${process.env.PATH}`,
    FAKE_LOG: log,
    SENTINEL_STATE_DIR: state,
    SENTINEL_CACHE_DIR: cache,
    SENTINEL_PG_DIR: join(dir, 'pg'),
    XDG_STATE_HOME: join(dir, 'xdg-state'),
    XDG_CACHE_HOME: join(dir, 'xdg-cache'),
  });
  const box = { dir, cache, state, log, env };
  t.teardown(() => {
    // Should the script under test have failed, end what its fakes started, then drop the sandbox.
    for (const pgid of fakeGroups(box)) kill(-pgid);
    for (const pid of fakePids(box)) kill(pid);
    rmSync(dir, { recursive: true, force: true });
  });
  return box;
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** since the signal was sent */
  ms: number;
}

interface Run {
  child: ChildProcess;
  output: () => string;
  /** Its exit, or null if it still runs after 10 s. */
  exited: () => Promise<Exit | null>;
  signal: (signal: NodeJS.Signals, target: 'group' | 'process') => void;
}

/**
 * Runs `bash SCRIPT ARGS` in a session and process group of its own, SIGINT at its default: as a
 * terminal runs its foreground job.
 */
function run(t: Test, box: Sandbox, args: string[], env: NodeJS.ProcessEnv = {}, cwd?: string): Run {
  const child = spawn('bash', args, { env: { ...box.env, ...env }, cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  let sentAt = Date.now();
  const exit = new Promise<Exit>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, ms: Date.now() - sentAt })));
  t.teardown(() => kill(-child.pid!));
  return {
    child,
    output: () => output,
    async exited() {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), 10_000)));
      const result = await Promise.race([exit, late]);
      clearTimeout(timer);
      return result;
    },
    signal(signal, target) {
      sentAt = Date.now();
      try {
        process.kill(target === 'group' ? -child.pid! : child.pid!, signal);
      } catch (err) {
        t.fail(`could not send ${signal}: ${String(err)}; output:\n${output}`);
      }
    },
  };
}

/** SIGKILL a process (or, negative, a process group) if it is still there. */
function kill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Live (not zombie) processes, from /proc: pid -> process group. */
function processes(): Map<number, number> {
  const out = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (state !== 'Z') out.set(Number(entry), Number(pgrp));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** What the fakes logged ('' once the sandbox is gone). */
function fakeLog(box: Sandbox): string {
  return existsSync(box.log) ? readFileSync(box.log, 'utf8') : '';
}
/** The pids the fakes logged (themselves and their slow children), and their process groups. */
function fakePids(box: Sandbox): number[] {
  return [...fakeLog(box).matchAll(/^(?:go|mvn|apt-get|child) (\d+)/gm)].map((m) => Number(m[1]));
}
function fakeGroups(box: Sandbox): number[] {
  return [...fakeLog(box).matchAll(/^(?:go|mvn|apt-get) \d+ (\d+)/gm)].map((m) => Number(m[1]));
}

/** Resolves with the name of the first fake whose slow child runs (the install is under way). */
async function toolRunning(box: Sandbox, r: Run): Promise<string> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const m = /^child \d+ (\S+)$/m.exec(fakeLog(box));
    if (m?.[1]) return m[1];
    if (r.child.exitCode !== null || r.child.signalCode !== null || Date.now() > deadline) {
      throw new Error(`no fake tool started; output:\n${r.output()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Files under DIR, relative to it. */
function files(dir: string, top = dir): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? files(join(dir, e.name), top) : [relative(top, join(dir, e.name))]))
    .sort();
}

/** Stopped within seconds, by the signal; none of the fakes' processes or their groups left. */
async function assertStopped(t: Test, box: Sandbox, r: Run, signal: NodeJS.Signals): Promise<void> {
  const exit = await r.exited();
  if (!exit) {
    t.fail(`still running 10 s after ${signal}; output:\n${r.output()}`);
    return;
  }
  const { code, signal: got, ms } = exit;
  const status = 128 + constants.signals[signal];
  t.ok(got === signal || code === status, `ends by ${signal} (got code ${code}, signal ${got})`);
  t.ok(ms < 4000, `within seconds of the signal (${ms} ms)`);
  // Reparented processes may take a moment to be reaped.
  const deadline = Date.now() + 2000;
  let left: number[] = [];
  do {
    const procs = processes();
    const groups = new Set([...fakeGroups(box), r.child.pid!]);
    left = [...procs].filter(([pid, pgrp]) => fakePids(box).includes(pid) || groups.has(pgrp)).map(([pid]) => pid);
    if (left.length === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  } while (Date.now() < deadline);
  t.same(left, [], 'none of its processes is left running');
}

t.test('up kube, Ctrl-C (SIGINT to the process group) during go build', async (t) => {
  const box = sandbox(t);
  const r = run(t, box, [INFRA, 'up', 'kube']);
  t.match(await toolRunning(box, r), /^(go|apt-get)$/, 'go build (or apt-get of curl/openssl before it)');
  r.signal('SIGINT', 'group');
  await assertStopped(t, box, r, 'SIGINT');
  t.match(r.output(), /interrupted \(SIGINT\)/);
  t.same(files(box.cache), [], 'no binary, partial or complete, in the cache');
});

t.test('up kube, SIGTERM to infra.sh alone: its go build stops too', async (t) => {
  const box = sandbox(t);
  const r = run(t, box, [INFRA, 'up', 'kube']);
  t.match(await toolRunning(box, r), /^(go|apt-get)$/, 'go build (or apt-get of curl/openssl before it)');
  r.signal('SIGTERM', 'process');
  await assertStopped(t, box, r, 'SIGTERM');
  await new Promise((resolve) => setTimeout(resolve, 1000));
  t.equal(fakeLog(box).match(/^go .* build /gm)?.length, 1, 'no later build started');
  t.same(files(box.cache), []);
});

t.test('up kafka, Ctrl-C during maven (or the apt-get before it)', async (t) => {
  const box = sandbox(t);
  const r = run(t, box, [INFRA, 'up', 'kafka']);
  const tool = await toolRunning(box, r);
  t.ok(['mvn', 'apt-get'].includes(tool), tool);
  r.signal('SIGINT', 'group');
  await assertStopped(t, box, r, 'SIGINT');
  const left = files(box.cache).filter((f) => !f.endsWith('.log'));
  t.same(left, [], 'no jar directory, temporary or final, and no .resolved stamp');
});

t.test('up nats (go install), SIGHUP: no truncated nats-server is left for the next run to trust', async (t) => {
  const box = sandbox(t);
  const r = run(t, box, [INFRA, 'up', 'nats'], { SENTINEL_NATS_FROM: 'go', FAKE_GO_COPY: '1' });
  t.equal(await toolRunning(box, r), 'go');
  t.ok(
    files(box.cache).some((f) => f.endsWith('/nats-server')),
    'the fake go install wrote part of a binary',
  );
  r.signal('SIGHUP', 'process');
  await assertStopped(t, box, r, 'SIGHUP');
  t.same(
    files(box.cache).filter((f) => !f.endsWith('.log')),
    [],
    'no nats-server, and no temporary directory, in the cache',
  );
});

t.test('numeric settings are checked before anything runs', async (t) => {
  const cases: Record<string, RegExp> = {
    SENTINEL_START_TIMEOUT: /SENTINEL_START_TIMEOUT must be a whole number of seconds/,
    SENTINEL_KUBE_START_TIMEOUT: /SENTINEL_KUBE_START_TIMEOUT must be a whole number of seconds/,
    SENTINEL_REDIS_PORT: /SENTINEL_REDIS_PORT must be a TCP port number/,
  };
  for (const [name, message] of Object.entries(cases)) {
    const box = sandbox(t);
    // Builds take no time here: should the check be missing, the run fails fast.
    const r = run(t, box, [INFRA, 'up', 'kube'], { [name]: name.endsWith('PORT') ? '16379x' : '30s', FAKE_SECONDS: '0' });
    t.equal((await r.exited())?.code, 1, name);
    t.match(r.output(), message);
    t.match(r.output(), /'(30s|16379x)'/, 'quotes the value');
    t.equal(fakeLog(box), '', 'no tool was run');
    t.notOk(existsSync(box.state), 'no state was written');
  }
});

/** A checkout-like root for test.sh and demo.sh: npm ci already done, the stand-in infra.sh. */
function fakeRoot(box: Sandbox): string {
  const root = join(box.dir, 'root');
  mkdirSync(join(root, 'hack'), { recursive: true });
  mkdirSync(join(root, 'node_modules'));
  for (const f of ['test.sh', 'demo.sh']) copyFileSync(join(HACK, f), join(root, 'hack', f));
  writeFileSync(join(root, 'hack', 'infra.sh'), STUB_INFRA);
  writeFileSync(join(root, 'hack', 'check-generated.sh'), 'exit 0\n');
  writeFileSync(join(root, 'node_modules', '.package-lock.json'), '{}');
  writeFileSync(join(root, 'package-lock.json'), '{}');
  const hourAgo = new Date(Date.now() - 3_600_000);
  utimesSync(join(root, 'package-lock.json'), hourAgo, hourAgo);
  return root;
}

for (const script of ['test.sh', 'demo.sh']) {
  for (const [signal, target] of [
    ['SIGINT', 'group'],
    ['SIGTERM', 'process'],
  ] as const) {
    t.test(`${script}: ${signal} to the ${target} during infra.sh up stops infra.sh and the script`, async (t) => {
      const box = sandbox(t);
      const root = fakeRoot(box);
      const r = run(t, box, [join(root, 'hack', script)], {}, root);
      t.equal(await toolRunning(box, r), 'infra');
      r.signal(signal, target);
      await assertStopped(t, box, r, signal);
      const log = fakeLog(box);
      t.match(log, /^infra got TERM$/m, 'infra.sh was told to stop');
      t.notMatch(log, /^infra env|^npx tsx/m, 'no later step ran');
      if (script === 'demo.sh') t.match(r.output(), /cleaning up/);
    });
  }
  t.test(`${script}: infra.sh interrupted on its own stops the script`, async (t) => {
    const box = sandbox(t);
    const root = fakeRoot(box);
    const r = run(t, box, [join(root, 'hack', script)], { STUB_INFRA_EXIT: '130' }, root);
    t.equal((await r.exited())?.code, 130);
    t.notMatch(fakeLog(box), /^infra env|^npx tsx/m, 'no later step ran');
  });
}
