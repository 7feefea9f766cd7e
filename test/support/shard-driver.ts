import type { NatsConnection } from 'nats';
import type { Test } from 'tap';
import { connectNats } from '../../src/adapters/nats/connection.js';
import { silentLogger } from '../../src/log.js';
import { testConfig } from './env.js';
import { startEngine, waitFor, type EngineProcess } from './stack.js';
import type { ShardCommand, ShardResult } from '../../src/domain/commands.js';
import { validateLayout } from '../../src/domain/layout.js';
import { shardMap, type ShardMap } from '../../src/domain/shard-map.js';
import { ShardClient } from '../../src/engine/shard-client.js';
import type { EventSpec } from '../../src/engine/provision.js';

/** Sends shard commands for one event the way the ingress does: seat → shard, then NATS request/reply. */
export class ShardDriver {
  readonly map: ShardMap;
  readonly client: ShardClient;

  constructor(
    nc: NatsConnection,
    readonly spec: EventSpec,
    private readonly deadlineMs = 10_000,
  ) {
    const validation = validateLayout(spec.layout);
    if (!validation.ok) throw new Error('bad test layout');
    this.map = shardMap(validation.layout, spec.shardCount);
    this.client = new ShardClient(nc);
  }

  /** All seat ids of the event in layout order. */
  seats(): string[] {
    return Array.from({ length: this.spec.shardCount }, (_, s) => this.map.seatsOfShard(s)).flat();
  }

  shardOf(command: ShardCommand): number {
    switch (command.type) {
      case 'hold':
        return this.map.shardOfSeat(command.seats[0] ?? '') ?? 0;
      case 'reserve':
        return this.map.shardOfSeat(command.seat) ?? 0;
      case 'hold-pool':
        return this.map.shardOfPool(command.pool) ?? 0;
      case 'hold-best':
        return this.map.shardsOfSection(command.section)?.[0] ?? 0;
      default:
        throw new Error(`shardOf needs an explicit shard for ${command.type}`);
    }
  }

  send(command: ShardCommand, shard = this.shardOf(command)): Promise<ShardResult> {
    return this.client.send(this.spec.eventId, shard, command, { deadlineMs: this.deadlineMs });
  }
}

/**
 * The outcome of a stream of commands: what was acknowledged, what failed. `sentAt` and
 * `answeredAt` are wall-clock times (Date.now(), the clock engines log with): when the command was
 * first sent, and when its answer (after any retries) came back.
 */
export interface StreamOutcome {
  readonly acknowledged: { command: ShardCommand; result: ShardResult; sentAt: number; answeredAt: number }[];
  readonly failed: { command: ShardCommand; error: string }[];
}

/**
 * Sends `commands` with bounded concurrency, recording every answer. Bounded: it stops when the
 * list is done, or earlier once `until` — asked, with what has come back so far, before each
 * command is taken — returns true; each request has the driver's deadline.
 */
export async function runStream(
  driver: ShardDriver,
  commands: readonly ShardCommand[],
  concurrency = 16,
  pauseMs = 0,
  until: (sofar: StreamOutcome) => boolean = () => false,
): Promise<StreamOutcome> {
  const outcome: StreamOutcome = { acknowledged: [], failed: [] };
  let next = 0;
  const worker = async () => {
    while (next < commands.length && !until(outcome)) {
      const command = commands[next++] as ShardCommand;
      const sentAt = Date.now();
      try {
        const result = await driver.send(command);
        outcome.acknowledged.push({ command, result, sentAt, answeredAt: Date.now() });
      } catch (error) {
        outcome.failed.push({ command, error: error instanceof Error ? error.message : String(error) });
      }
      if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return outcome;
}

/**
 * One engine process serving every shard of `spec`, and a driver on each of `connections` NATS
 * connections of their own: each connection's client sends the commands it is given in one turn as
 * one message, so commands spread over several reach the shard as several messages. A driver's
 * deadline (`deadlineMs`) well beyond a rush's length makes a lost or retried command show as a
 * failure or an extra decision, not as the timeout of a loaded machine. Closed with `t`.
 */
export async function engineWithDrivers(
  t: Test,
  spec: EventSpec,
  options: { readonly connections: number; readonly name: string; readonly deadlineMs: number },
): Promise<{ engine: EngineProcess; drivers: ShardDriver[] }> {
  const connections: NatsConnection[] = [];
  t.teardown(async () => {
    for (const nc of connections) await nc.close();
  });
  for (let i = 0; i < options.connections; i++)
    connections.push(await connectNats({ url: testConfig().natsUrl, log: silentLogger, name: `${options.name}-${i}` }));
  const drivers = connections.map((nc) => new ShardDriver(nc, spec, options.deadlineMs));
  const engine = await startEngine(spec.eventId);
  t.teardown(async () => {
    await engine.stop();
  });
  await waitFor('every shard owned', async () => (await engine.metric('sentinel_engine_owned_shards')) === spec.shardCount);
  return { engine, drivers };
}
