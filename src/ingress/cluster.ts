/**
 * Several ingress processes on one port (`sentinel ingress --workers N`, node:cluster). The ingress
 * keeps no state of its own, so on a machine with more cores than pods (a VM, bare metal, the
 * local stack) one process per core uses them all. In Kubernetes prefer more pods of one worker.
 *
 * The supervisor only forks, restarts a worker that dies (giving up on a crash loop) and, on
 * SIGTERM, stops every worker gracefully. Connections are spread over the workers by the cluster
 * module. `/metrics`, answered by whichever worker gets the scrape, is the sum over all workers,
 * collected by the supervisor — a scrape never sees one worker's counters alone.
 */
import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';
import { EXIT_WITH_PARENT_ENV } from '../config.js';
import { DependencyError } from '../errors.js';
import type { Logger } from '../log.js';

const METRICS_REQUEST = 'sentinel:ingress-metrics-request';
const METRICS_REPLY = 'sentinel:ingress-metrics-reply';
/** More worker deaths than this within CRASH_WINDOW_MS stop the supervisor (exit 1). */
const CRASH_LIMIT = 5;
const CRASH_WINDOW_MS = 60_000;

interface MetricsRequest {
  readonly type: typeof METRICS_REQUEST;
  readonly id: number;
}
interface MetricsReply {
  readonly type: typeof METRICS_REPLY;
  readonly id: number;
  readonly text?: string;
  readonly error?: string;
}

/** Whether this process is a worker under an ingress supervisor. */
export function isClusterWorker(): boolean {
  return cluster.isWorker;
}

/**
 * In a worker: offers `registry` to the supervisor's collection, and returns the function that
 * answers `/metrics` with the sum over all workers.
 */
export function clusterMetrics(registry: Registry, timeoutMs = 5000): () => Promise<string> {
  AggregatorRegistry.setRegistries([registry]);
  new AggregatorRegistry(); // installs the worker's answer to the supervisor's collection requests
  const waiting = new Map<number, (reply: MetricsReply | undefined) => void>();
  let next = 0;
  process.on('message', (message: Partial<MetricsReply>) => {
    if (message?.type === METRICS_REPLY && typeof message.id === 'number') waiting.get(message.id)?.(message as MetricsReply);
  });
  return () =>
    new Promise<string>((resolve, reject) => {
      const id = next++;
      const settle = (reply: MetricsReply | undefined) => {
        clearTimeout(timer);
        waiting.delete(id);
        if (reply?.text !== undefined) resolve(reply.text);
        else reject(new DependencyError('ingress-supervisor', `cannot collect the workers' metrics: ${reply?.error ?? 'no answer'}`));
      };
      const timer = setTimeout(() => settle(undefined), timeoutMs);
      waiting.set(id, settle);
      process.send?.({ type: METRICS_REQUEST, id } satisfies MetricsRequest);
    });
}

/** In a worker that has stopped serving: closes the channel to the supervisor, so the process can exit. */
export function leaveCluster(): void {
  if (cluster.isWorker) process.disconnect?.();
}

/**
 * Runs the supervisor: forks `workers` copies of this process (same arguments, same Node flags),
 * keeps them running, and stops them all on `stop`. Resolves with the exit code.
 */
export async function superviseWorkers(options: { workers: number; log: Logger; stop: Promise<string> }): Promise<number> {
  const { log } = options;
  const aggregator = new AggregatorRegistry();
  cluster.on('message', (worker: Worker, message: Partial<MetricsRequest>) => {
    if (message?.type !== METRICS_REQUEST || typeof message.id !== 'number') return;
    const id = message.id;
    // The asker may have died while the others answered: its channel is closed, and a send on it
    // would raise an error event nobody handles, killing the supervisor and so every worker.
    const reply = (answer: MetricsReply) => {
      if (worker.isConnected()) worker.send(answer, undefined, () => undefined);
    };
    aggregator.clusterMetrics().then(
      (text) => reply({ type: METRICS_REPLY, id, text }),
      (error: unknown) => reply({ type: METRICS_REPLY, id, error: error instanceof Error ? error.message : String(error) }),
    );
  });

  // Each worker is owned by this supervisor: it leaves a terminal's Ctrl-C to it (the supervisor
  // stops every worker with SIGTERM) and stops once the supervisor is gone.
  const fork = () =>
    cluster
      .fork({ [EXIT_WITH_PARENT_ENV]: String(process.pid) })
      // A send that raced the worker's death: its exit is handled below; nothing else to do.
      .on('error', (error: Error) => log.warn({ err: error.message }, 'Ingress worker channel error'));
  let stopping = false;
  const deaths: number[] = [];
  let crashLoop: (() => void) | undefined;
  const crashed = new Promise<void>((resolve) => (crashLoop = resolve));
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) return;
    const now = Date.now();
    deaths.push(now);
    while (deaths.length > 0 && deaths[0]! < now - CRASH_WINDOW_MS) deaths.shift();
    if (deaths.length > CRASH_LIMIT) {
      log.fatal({ pid: worker.process.pid, code, signal, deaths: deaths.length }, 'Ingress workers keep dying; stopping');
      crashLoop?.();
      return;
    }
    log.error({ pid: worker.process.pid, code, signal }, 'Ingress worker died; starting another');
    fork();
  });
  for (let i = 0; i < options.workers; i++) fork();
  log.info({ workers: options.workers, pid: process.pid }, 'Ingress supervisor started');

  const reason = await Promise.race([options.stop, crashed.then(() => 'crash-loop' as const)]);
  stopping = true;
  const running = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && !w.isDead());
  log.info({ reason, workers: running.length }, 'Stopping ingress workers');
  await Promise.all(
    running.map(
      (worker) =>
        new Promise<void>((resolve) => {
          worker.once('exit', () => resolve());
          worker.process.kill('SIGTERM');
        }),
    ),
  );
  return reason === 'crash-loop' ? 1 : 0;
}
