import type { RouterContext } from '@koa/router';
import type { ShardCommand, ShardResult } from '../domain/commands.js';
import type { ShardRequestOptions } from '../engine/shard-client.js';
import type { Logger } from '../log.js';

/** What the ingress keeps on each request (`ctx.state`). */
export interface IngressState {
  /** Correlation id: echoed as X-Request-Id, logged, sent to the engine, quoted in problems. */
  readonly requestId: string;
  readonly log: Logger;
  /** The OpenAPI path of the matched operation (the metrics label), or `unmatched`. */
  route: string;
  /** The JWT subject, once authenticated. */
  customer: string | undefined;
  /** The validated JSON body, or undefined when none was sent. */
  body: unknown;
  /** Whether a shard answered this request with a replay of its key's first result (Idempotent-Replayed). */
  replayedByShard: boolean;
}

/** The state of one request. Its logger (a child carrying the request id) is built on first use: most requests never log. */
export class RequestState implements IngressState {
  route = 'unmatched';
  customer: string | undefined = undefined;
  body: unknown = undefined;
  replayedByShard = false;
  private child: Logger | undefined;

  constructor(
    readonly requestId: string,
    private readonly root: Logger,
  ) {}

  get log(): Logger {
    return (this.child ??= this.root.child({ requestId: this.requestId }));
  }
}

export type IngressContext = RouterContext<IngressState>;

/** A route handler, named after its OpenAPI operation id. */
export type Handler = (ctx: IngressContext) => Promise<void>;

/** Sends commands to shards: the ShardClient in production (over NATS). */
export interface ShardSender {
  send(eventId: string, shard: number, command: ShardCommand, options: ShardRequestOptions): Promise<ShardResult>;
}
