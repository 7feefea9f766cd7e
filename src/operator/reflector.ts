/**
 * List-then-watch of one resource, turning every change into work-queue keys (level-based: the
 * watch event's type is never passed on, only which object to look at). It relists after a watch
 * expires with 410 Gone or fails, and re-enqueues every known key on each resync period so that
 * drift is corrected even when no event arrives. With `cache` it also keeps the objects as last
 * seen, for the reconciler to read instead of asking the API server (client-go's informer store).
 */
import { k8s } from '../adapters/kubernetes/client.js';
import type { Logger } from '../log.js';

/** A watch that ends sooner than this (ms) without an error counts as a short one: the next waits. */
const SHORT_WATCH_MS = 1000;

/** What a reflector lists and watches. */
export interface ReflectorSource {
  /** Short name for logs, e.g. `ticketevents`. */
  readonly name: string;
  /** API path of the collection, e.g. `/apis/sentinel.dev/v1alpha1/ticketevents`. */
  readonly path: string;
  readonly labelSelector?: string;
  /** Lists the collection (with the same label selector). */
  list(): Promise<k8s.KubernetesListObject<k8s.KubernetesObject>>;
  /** The work-queue keys an object maps to (its own key, or its owner's). */
  keysOf(object: k8s.KubernetesObject): readonly string[];
  /**
   * What about an object is worth a reconcile. A MODIFIED event that leaves it unchanged is not
   * passed on — e.g. a write of the status alone, which is the controller's own (without this, each
   * status write of changing counts would queue the next reconcile at once, back to back for as
   * long as a sale runs). Every event is passed on when absent.
   */
  relevantOf?(object: k8s.KubernetesObject): string;
  /** Keep each object as last listed or watched, for `get`. */
  readonly cache?: boolean;
}

/** Typed watch events (BOOKMARK and ERROR are handled here and never reach the queue). */
export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export interface ReflectorOptions {
  readonly kubeConfig: k8s.KubeConfig;
  readonly source: ReflectorSource;
  readonly enqueue: (key: string) => void;
  readonly log: Logger;
  readonly resyncMs: number;
  /** Server-side watch timeout; a watch ends and is resumed from its resourceVersion after this. */
  readonly watchTimeoutSeconds?: number;
}

class GoneError extends Error {}

export class Reflector {
  private readonly options: ReflectorOptions;
  private readonly log: Logger;
  private readonly known = new Set<string>();
  /** `relevantOf` of each object last seen, by namespace/name (only with `relevantOf`). */
  private readonly relevant = new Map<string, string>();
  /** Objects as last seen, by namespace/name (only with `cache`). */
  private readonly objects = new Map<string, k8s.KubernetesObject>();
  private listed = false;
  private stopped = false;
  private abort: AbortController | undefined;
  private wake: (() => void) | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private loop: Promise<void> | undefined;
  private syncedResolve!: () => void;
  /** Resolves after the first successful list. */
  readonly synced: Promise<void> = new Promise((resolve) => (this.syncedResolve = resolve));

  constructor(options: ReflectorOptions) {
    this.options = options;
    this.log = options.log.child({ reflector: options.source.name });
  }

  /**
   * The object as last listed or watched, with `cache`; undefined when it does not exist (as far
   * as this reflector knows). Throws before the first list, and after a failed list or watch until
   * a list succeeds: "not seen" would mean nothing then.
   */
  get(namespace: string, name: string): k8s.KubernetesObject | undefined {
    if (this.options.source.cache !== true) throw new Error(`reflector ${this.options.source.name} keeps no cache`);
    if (!this.listed) throw new Error(`reflector ${this.options.source.name} is not synced (no list yet, or a list or watch failed since)`);
    return this.objects.get(`${namespace}/${name}`);
  }

  /** Whether this reflector keeps a cache (`get`). */
  get caches(): boolean {
    return this.options.source.cache === true;
  }

  /** Whether a list is done and no list or watch failed since (`get` answers). */
  get hasSynced(): boolean {
    return this.listed;
  }

  start(): void {
    this.loop = this.run();
    this.resyncTimer = setInterval(() => {
      for (const key of this.known) this.options.enqueue(key);
    }, this.options.resyncMs);
    this.resyncTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.resyncTimer !== undefined) clearInterval(this.resyncTimer);
    this.abort?.abort();
    this.wake?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      try {
        let resourceVersion = await this.list();
        failures = 0;
        let shortWatches = 0;
        while (!this.stopped) {
          const started = performance.now();
          resourceVersion = await this.watch(resourceVersion);
          // A watch that the server (or a proxy) ends at once, cleanly, over and over — a terminating
          // API server, say — must not be re-opened in a tight loop: as client-go, back off.
          if (performance.now() - started >= SHORT_WATCH_MS) shortWatches = 0;
          else if (!this.stopped) {
            const delay = Math.min(30_000, 250 * 2 ** Math.min(++shortWatches, 7));
            this.log.warn({ retryInMs: delay }, 'Watch ended as soon as it began; watching again after a pause');
            await this.sleep(delay);
          }
        }
      } catch (error) {
        if (this.stopped) break;
        if (error instanceof GoneError) {
          this.log.debug('Watch expired; relisting');
          continue;
        }
        failures++;
        // The cache may be missing changes from now until a list succeeds: it answers no more
        // (`get` throws, `hasSynced` is false), so its readers go to the API server meanwhile.
        this.listed = false;
        const delay = Math.min(30_000, 250 * 2 ** Math.min(failures, 7));
        this.log.warn({ err: error, retryInMs: delay }, 'List or watch failed; retrying');
        await this.sleep(delay);
      }
    }
  }

  private async list(): Promise<string> {
    const { source } = this.options;
    const list = await source.list();
    const keys = new Set(list.items.flatMap((item) => source.keysOf(item)));
    this.relevant.clear();
    this.objects.clear();
    for (const item of list.items) this.remember(item);
    this.known.clear();
    for (const key of keys) {
      this.known.add(key);
      this.options.enqueue(key);
    }
    this.listed = true;
    this.syncedResolve();
    this.log.debug({ objects: list.items.length }, 'Listed');
    return list.metadata?.resourceVersion ?? '';
  }

  /** Watches from `resourceVersion` until the server ends the watch; returns where to resume. */
  private watch(resourceVersion: string): Promise<string> {
    const { source, kubeConfig } = this.options;
    let latest = resourceVersion;
    let gone = false;
    /** An ERROR event other than 410: a failure like any other (backoff, then relist), never an instant re-watch that could spin. */
    let failed: string | undefined;
    return new Promise<string>((resolve, reject) => {
      const watch = new k8s.Watch(kubeConfig);
      const timeout = this.options.watchTimeoutSeconds ?? 240 + Math.floor(Math.random() * 120);
      watch
        .watch(
          source.path,
          { resourceVersion, allowWatchBookmarks: true, timeoutSeconds: timeout, labelSelector: source.labelSelector },
          (phase: string, object: k8s.KubernetesObject & { code?: number; message?: string }) => {
            const type = phase as WatchEventType;
            if (type === 'ERROR') {
              if (object.code === 410) gone = true;
              else failed = `watch error ${object.code ?? '?'}: ${object.message ?? 'no message'}`;
              this.abort?.abort();
              return;
            }
            latest = object.metadata?.resourceVersion ?? latest;
            if (type === 'BOOKMARK') return;
            if (type === 'DELETED') {
              this.relevant.delete(objectName(object));
              this.objects.delete(objectName(object));
            } else if (!this.remember(object) && type === 'MODIFIED') return;
            for (const key of source.keysOf(object)) {
              if (type === 'DELETED') this.known.delete(key);
              else this.known.add(key);
              this.options.enqueue(key);
            }
          },
          (error: unknown) => {
            if (gone) reject(new GoneError('410 Gone'));
            else if (failed !== undefined && !this.stopped) reject(new Error(failed));
            else if (error !== null && error !== undefined && !this.stopped && !isAbort(error))
              reject(error instanceof Error ? error : new Error(String(error)));
            else resolve(latest);
          },
        )
        .then(
          (controller) => {
            this.abort = controller;
            if (this.stopped) controller.abort();
          },
          (error: unknown) => reject(error instanceof Error ? error : new Error(String(error))),
        );
    });
  }

  /**
   * Keeps the object (with `cache`) and records its `relevantOf`; whether that differs from the
   * last one seen (always true without `relevantOf`).
   */
  private remember(object: k8s.KubernetesObject): boolean {
    if (this.options.source.cache === true) this.objects.set(objectName(object), object);
    const relevantOf = this.options.source.relevantOf;
    if (relevantOf === undefined) return true;
    const name = objectName(object);
    const value = relevantOf(object);
    if (this.relevant.get(name) === value) return false;
    this.relevant.set(name, value);
    return true;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}

function isAbort(error: unknown): boolean {
  return (
    typeof error === 'object' &&
    error !== null &&
    ((error as { name?: string }).name === 'AbortError' || (error as { type?: string }).type === 'aborted')
  );
}

function objectName(object: k8s.KubernetesObject): string {
  return `${object.metadata?.namespace ?? ''}/${object.metadata?.name ?? ''}`;
}
