/**
 * Several ingress processes on one port (`sentinel ingress --workers N`, node:cluster). The ingress
 * keeps no state of its own, so on a machine with more cores than pods (a VM, bare metal, the
 * local stack) one process per core uses them all. In Kubernetes prefer more pods of one worker.
 *
 * The supervisor only forks, restarts a worker that dies (giving up on a crash loop) and, on
 * SIGTERM, stops every worker gracefully. Connections are spread over the workers by the cluster
 * module. `/metrics`, answered by whichever worker gets the scrape, is the sum over all workers,
 * collected by the supervisor — a scrape never sees one worker's counters alone. The sum is over
 * the workers that have offered their metrics (a worker that is still starting has nothing to
 * count yet, and is not waited for) and are alive (one that dies while a scrape is gathered
 * takes its counters with it); a worker that has offered them and does not answer in time fails
 * the scrape (503) rather than making the sums drop.
 */
import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';
import { EXIT_WITH_PARENT_ENV } from '../config.js';
import { DependencyError } from '../errors.js';
import type { Logger } from '../log.js';

/** Worker → supervisor: collect everyone's metrics for my scrape; and the answer. */
const METRICS_REQUEST = 'sentinel:ingress-metrics-request';
const METRICS_REPLY = 'sentinel:ingress-metrics-reply';
/** Worker → supervisor: my metrics can be collected from now on. */
const METRICS_READY = 'sentinel:ingress-metrics-ready';
/** Supervisor → worker: send me your metrics; and the worker's part. */
const METRICS_COLLECT = 'sentinel:ingress-metrics-collect';
const METRICS_PART = 'sentinel:ingress-metrics-part';
/** How long the supervisor waits for the workers' parts (the asking worker waits a second longer). */
const COLLECT_TIMEOUT_MS = 4000;
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
interface MetricsCollect {
  readonly type: typeof METRICS_COLLECT;
  readonly id: number;
}
interface MetricsPart {
  readonly type: typeof METRICS_PART;
  readonly id: number;
  readonly metrics?: object[];
  readonly error?: string;
}
/** A message sent on an IPC channel that may close meanwhile: a failed send is no error event. */
const ignoreSendError = () => undefined;

/** Whether this process is a worker under an ingress supervisor. */
export function isClusterWorker(): boolean {
  return cluster.isWorker;
}

/**
 * In a worker: offers `registry` to the supervisor's collection, and returns the function that
 * answers `/metrics` with the sum over all workers.
 */
export function clusterMetrics(registry: Registry, timeoutMs = COLLECT_TIMEOUT_MS + 1000): () => Promise<string> {
  const waiting = new Map<number, (reply: MetricsReply | undefined) => void>();
  let next = 0;
  process.on('message', (message: Partial<MetricsReply | MetricsCollect> | null) => {
    if (typeof message !== 'object' || message === null || typeof message.id !== 'number') return;
    const id = message.id;
    if (message.type === METRICS_REPLY) waiting.get(id)?.(message as MetricsReply);
    else if (message.type === METRICS_COLLECT) {
      registry.getMetricsAsJSON().then(
        (metrics) => process.send?.({ type: METRICS_PART, id, metrics } satisfies MetricsPart, undefined, undefined, ignoreSendError),
        (error: unknown) =>
          process.send?.(
            { type: METRICS_PART, id, error: error instanceof Error ? error.message : String(error) } satisfies MetricsPart,
            undefined,
            undefined,
            ignoreSendError,
          ),
      );
    }
  });
  process.send?.({ type: METRICS_READY }, undefined, undefined, ignoreSendError);
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
  const collections = new Collections();
  cluster.on('message', (worker: Worker, message: Partial<MetricsRequest | MetricsPart> | { type: typeof METRICS_READY }) => {
    if (typeof message !== 'object' || message === null) return; // not ours
    if (message.type === METRICS_READY) return collections.ready(worker);
    if (!('id' in message) || typeof message.id !== 'number') return;
    if (message.type === METRICS_PART) return collections.part(worker, message as MetricsPart);
    if (message.type !== METRICS_REQUEST) return;
    const id = message.id;
    // The asker may have died while the others answered: its channel is closed, and a send on it
    // would raise an error event nobody handles, killing the supervisor and so every worker.
    const reply = (answer: MetricsReply) => {
      if (worker.isConnected()) worker.send(answer, undefined, ignoreSendError);
    };
    collections.collect(COLLECT_TIMEOUT_MS).then(
      (text) => reply({ type: METRICS_REPLY, id, text }),
      (error: unknown) => reply({ type: METRICS_REPLY, id, error: error instanceof Error ? error.message : String(error) }),
    );
  });
  // A worker that left the channel (it stopped serving: `leaveCluster`) or died is not asked, nor waited for.
  cluster.on('disconnect', (worker) => collections.gone(worker));
  cluster.on('exit', (worker) => collections.gone(worker));

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

/**
 * The supervisor's collections of the workers' metrics: from every worker that has offered its
 * metrics and is alive, summed (`AggregatorRegistry.aggregate`, which knows how each kind of
 * metric adds up). A worker that dies during a collection is not waited for.
 */
class Collections {
  private readonly offered = new Set<Worker>();
  private readonly inFlight = new Map<number, { part(worker: Worker, part: MetricsPart): void; gone(worker: Worker): void }>();
  private next = 0;

  ready(worker: Worker): void {
    this.offered.add(worker);
  }

  part(worker: Worker, part: MetricsPart): void {
    this.inFlight.get(part.id)?.part(worker, part);
  }

  gone(worker: Worker): void {
    this.offered.delete(worker);
    for (const collection of this.inFlight.values()) collection.gone(worker);
  }

  collect(timeoutMs: number): Promise<string> {
    const id = this.next++;
    const pending = new Set([...this.offered].filter((worker) => worker.isConnected()));
    const parts: object[][] = [];
    return new Promise<string>((resolve, reject) => {
      const finish = (error?: Error) => {
        if (!this.inFlight.delete(id)) return;
        clearTimeout(timer);
        if (error) reject(error);
        else AggregatorRegistry.aggregate(parts).metrics().then(resolve, reject);
      };
      const answered = (worker: Worker) => {
        if (pending.delete(worker) && pending.size === 0) finish();
      };
      const timer = setTimeout(
        () => finish(new Error(`${pending.size} of the workers did not send their metrics within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.inFlight.set(id, {
        part: (worker, part) => {
          if (!pending.has(worker)) return;
          if (part.metrics === undefined) return finish(new Error(`a worker could not read its metrics: ${part.error ?? 'no metrics'}`));
          parts.push(part.metrics);
          answered(worker);
        },
        gone: answered, // its counters are gone with it
      });
      if (pending.size === 0) return finish();
      for (const worker of [...pending]) worker.send({ type: METRICS_COLLECT, id } satisfies MetricsCollect, undefined, ignoreSendError);
    });
  }
}
