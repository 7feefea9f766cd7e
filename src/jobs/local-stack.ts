/**
 * Engine and ingress processes on this machine, started the way their pods would start them
 * (`sentinel engine` / `sentinel ingress`, configured through the environment). No kubelet runs
 * locally, so chaos, the benchmarks and the tests use this to own the processes they break:
 * start, wait until ready, signal (SIGKILL, SIGSTOP/SIGCONT), restart, stop. Each is owned by this
 * process (`SENTINEL_EXIT_WITH_PARENT`, src/cli/signals.ts): it leaves a terminal's Ctrl-C to this
 * process, which stops it in order, and stops gracefully by itself once this process is gone, even
 * by SIGKILL.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EXIT_WITH_PARENT_ENV } from '../config.js';
import { SentinelError } from '../errors.js';

/**
 * V8 settings for Sentinel's servers. A busy ingress or engine allocates a young generation's worth
 * of short-lived request objects every few milliseconds; with V8's default 16 MB semi-spaces they
 * are scavenged, and some promoted, far more often than needed. 64 MB semi-spaces raised hot-seat
 * throughput by about a fifth in `npm run bench:ingress` (12,000 → 14,900 requests/s). The
 * container image sets the same through NODE_OPTIONS.
 */
export const SERVER_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=64'];

/** The command that runs the CLI: the tsx launcher from a checkout, the compiled entry in the image. */
export function sentinelCli(): string[] {
  const compiled = !import.meta.url.endsWith('.ts');
  const entry = compiled
    ? fileURLToPath(new URL('../cli/main.js', import.meta.url))
    : fileURLToPath(new URL('../../bin/sentinel.js', import.meta.url));
  return [process.execPath, ...SERVER_NODE_FLAGS, entry];
}

/** A free loopback TCP port. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

export type Role = 'engine' | 'ingress';

/** One running (or exited) process of the stack. */
export interface ManagedProcess {
  readonly name: string;
  readonly role: Role;
  /** Engine: health/metrics port; ingress: API port. */
  readonly port: number;
  readonly url: string;
  readonly env: Readonly<Record<string, string>>;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly startedAt: number;
  /** Resolves with the exit code (null after a signal). */
  readonly exited: Promise<number | null>;
  paused: boolean;
  /** The last lines it printed. */
  readonly tail: string[];
}

/** The process could not start or did not become ready. */
export class ProcessStartError extends SentinelError {
  constructor(message: string) {
    super('process_start_failed', message, { retryable: true });
  }
}

const TAIL_LINES = 50;

export interface LocalStackOptions {
  /** Environment of every process (connection settings); each start adds its own. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** When set, each process's output goes to `<logDir>/<name>.log` as well. */
  readonly logDir?: string;
  /** How long a process may take to become ready (ms). */
  readonly readyTimeoutMs?: number;
  /** Prefix of process names (engine ids), e.g. a run id; names are `<prefix>engine-<n>`. */
  readonly namePrefix?: string;
  /** The argv that runs `sentinel` (default `sentinelCli()`); the benchmarks pass their compiled build's. */
  readonly cli?: readonly string[];
}

export class LocalStack {
  readonly processes: ManagedProcess[] = [];
  private readonly logs = new Map<string, WriteStream>();
  private engineCount = 0;
  private ingressCount = 0;

  constructor(private readonly options: LocalStackOptions) {}

  /** Live processes of a role. */
  running(role: Role): ManagedProcess[] {
    return this.processes.filter((p) => p.role === role && p.child.exitCode === null && p.child.signalCode === null);
  }

  /** Starts `sentinel engine` for an event and waits until it reports ready. */
  async startEngine(eventId: string, env: Record<string, string> = {}): Promise<ManagedProcess> {
    const name = env['SENTINEL_ENGINE_ID'] ?? `${this.options.namePrefix ?? ''}engine-${++this.engineCount}`;
    const port = await freePort();
    return this.start(name, 'engine', ['engine'], port, {
      SENTINEL_EVENT: eventId,
      SENTINEL_ENGINE_ID: name,
      SENTINEL_HTTP_PORT: String(port),
      ...env,
    });
  }

  /** Starts `sentinel ingress` on `port` (a free one by default) and waits until it is ready. */
  async startIngress(options: { port?: number; name?: string; env?: Record<string, string> } = {}): Promise<ManagedProcess> {
    const name = options.name ?? `${this.options.namePrefix ?? ''}ingress-${++this.ingressCount}`;
    const port = options.port ?? (await freePort());
    return this.start(name, 'ingress', ['ingress', '--port', String(port), '--host', '127.0.0.1', '--grace-ms', '3000'], port, {
      SENTINEL_INGRESS_PORT: String(port),
      ...options.env,
    });
  }

  private async start(name: string, role: Role, args: string[], port: number, env: Record<string, string>): Promise<ManagedProcess> {
    const [command, ...prefix] = this.options.cli ?? sentinelCli();
    const child = spawn(command!, [...prefix, ...args], {
      // Owned by this process: a terminal's Ctrl-C is for the job, which stops it in order
      // (ingresses, then engines) or kills it — not for it directly, in the middle of a chaos run's
      // wind-down; and it stops by itself once this process is gone. It stays in this process's
      // group, so if this process dies while it is stopped (SIGSTOP), the kernel wakes it with
      // SIGHUP and SIGCONT, and it stops then.
      env: { ...process.env, LOG_LEVEL: 'info', ...this.options.env, ...env, [EXIT_WITH_PARENT_ENV]: String(process.pid) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const tail: string[] = [];
    let file = this.logs.get(name);
    if (file === undefined && this.options.logDir) {
      file = createWriteStream(join(this.options.logDir, `${name}.log`), { flags: 'a' });
      this.logs.set(name, file);
    }
    const sink = (chunk: Buffer) => {
      file?.write(chunk);
      for (const line of chunk.toString().split('\n')) {
        if (line === '') continue;
        tail.push(line);
        if (tail.length > TAIL_LINES) tail.shift();
      }
    };
    child.stdout?.on('data', sink);
    child.stderr?.on('data', sink);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const managed: ManagedProcess = {
      name,
      role,
      port,
      url: `http://127.0.0.1:${port}`,
      env,
      child,
      pid: child.pid ?? -1,
      startedAt: Date.now(),
      exited,
      paused: false,
      tail,
    };
    this.processes.push(managed);
    await this.waitReady(managed);
    return managed;
  }

  /** Polls /readyz until 200. */
  async waitReady(p: ManagedProcess, timeoutMs = this.options.readyTimeoutMs ?? 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (p.child.exitCode !== null || p.child.signalCode !== null) {
        throw new ProcessStartError(
          `${p.name} exited (${p.child.exitCode ?? p.child.signalCode}) before it was ready:\n${p.tail.slice(-8).join('\n')}`,
        );
      }
      try {
        const response = await fetch(`${p.url}/readyz`, { signal: AbortSignal.timeout(1000) });
        if (response.ok) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new ProcessStartError(`${p.name} not ready after ${timeoutMs} ms:\n${p.tail.slice(-8).join('\n')}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  signal(p: ManagedProcess, signal: NodeJS.Signals): void {
    if (p.child.exitCode !== null || p.child.signalCode !== null) return;
    p.child.kill(signal);
    if (signal === 'SIGSTOP') p.paused = true;
    if (signal === 'SIGCONT') p.paused = false;
  }

  /** SIGKILL, and wait until it is gone. */
  async kill(p: ManagedProcess): Promise<void> {
    this.signal(p, 'SIGKILL');
    await p.exited;
  }

  /** SIGTERM (graceful: engines hand their shards off), SIGKILL after `timeoutMs`. */
  async stop(p: ManagedProcess, timeoutMs = 20_000): Promise<number | null> {
    if (p.child.exitCode !== null || p.child.signalCode !== null) return p.child.exitCode;
    if (p.paused) this.signal(p, 'SIGCONT');
    this.signal(p, 'SIGTERM');
    const timer = setTimeout(() => this.signal(p, 'SIGKILL'), timeoutMs);
    try {
      return await p.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Restarts an ingress on the same port (clients keep their URL), gracefully or with SIGKILL. */
  async restartIngress(p: ManagedProcess, how: 'graceful' | 'kill'): Promise<ManagedProcess> {
    if (how === 'kill') await this.kill(p);
    else await this.stop(p);
    return this.startIngress({ port: p.port, name: p.name, env: { ...p.env } });
  }

  /** Stops everything: ingresses first (no new work), then engines (they hand off and flush). */
  async stopAll(): Promise<void> {
    await Promise.all(this.running('ingress').map((p) => this.stop(p)));
    await Promise.all(this.running('engine').map((p) => this.stop(p)));
    await Promise.all([...this.logs.values()].map((s) => new Promise<void>((resolve) => s.end(resolve))));
    this.logs.clear();
  }

  /** Last resort on process exit: nothing we started may outlive us. */
  killAllNow(): void {
    for (const p of this.processes) {
      if (p.child.exitCode === null && p.child.signalCode === null) {
        p.child.kill('SIGCONT');
        p.child.kill('SIGKILL');
      }
    }
  }
}
