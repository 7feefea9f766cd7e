/**
 * A load-generator thread for bench/engine.ts: its own NATS connection, sending its share of the
 * commands with a bounded number in flight, reporting latencies and result counts.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { connectNats } from '../src/adapters/nats/connection.js';
import type { ShardCommand } from '../src/domain/commands.js';
import type { EventSpec } from '../src/engine/provision.js';
import { silentLogger } from '../src/log.js';
import { ShardDriver } from '../test/support/shard-driver.js';

interface Job {
  natsUrl: string;
  spec: EventSpec;
  commands: ShardCommand[];
  inFlight: number;
}

const job = workerData as Job;
const nc = await connectNats({ url: job.natsUrl, log: silentLogger, name: 'bench-load' });
const driver = new ShardDriver(
  nc,
  { ...job.spec, saleOpensAt: new Date(job.spec.saleOpensAt), saleClosesAt: new Date(job.spec.saleClosesAt) },
  30_000,
);
const latencies = new Float64Array(job.commands.length);
const results: Record<string, number> = {};
let next = 0;
// Wait for the go signal so every thread starts together.
await new Promise<void>((resolve) => parentPort?.once('message', () => resolve()));
await Promise.all(
  Array.from({ length: job.inFlight }, async () => {
    while (next < job.commands.length) {
      const i = next++;
      const t0 = performance.now();
      const result = await driver.send(job.commands[i] as ShardCommand);
      latencies[i] = performance.now() - t0;
      results[result.type] = (results[result.type] ?? 0) + 1;
    }
  }),
);
parentPort?.postMessage({ latencies, results }, [latencies.buffer]);
await nc.close();
