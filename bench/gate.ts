/**
 * `npm run bench:gate [-- --requests 60000] [-- --concurrency 500] [-- --json]`: what the
 * Idempotency-Key/admission gate costs per durable command — the ingress's CPU (this process) and
 * Redis's — when `concurrency` requests at a time each claim a fresh key with admission and then
 * store a 201 under it, as `POST …/holds` does; then what a loser refused without a shard costs it
 * (a seat known to be sold: the gate only peeks at the buyer's fresh key). The requests of one
 * event-loop turn share one script run (CommandGate); this prints what that costs per request.
 *
 * Needs the local infrastructure (`bash hack/infra.sh up`; `eval "$(bash hack/infra.sh env)"`).
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { connectRedis, createRedis } from '../src/adapters/redis/client.js';
import { CommandGate, type GateRequest } from '../src/ingress/command-gate.js';
import { forgetEventKeys } from '../src/ingress/redis-scripts.js';
import { cpuDelta, cpuSeconds, localServicePids, ownCpuSeconds } from '../src/jobs/cpu-accounting.js';
import { silentLogger } from '../src/log.js';
import { testConfig } from '../test/support/env.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const { values: args } = parseArgs({
  options: {
    requests: { type: 'string', default: '60000' },
    concurrency: { type: 'string', default: '500' },
    json: { type: 'boolean', default: false },
  },
});
const requests = Number(args.requests);
const concurrency = Number(args.concurrency);

// The ingress's client settings (auto-pipelining on), as `sentinel ingress` connects.
const redis = createRedis({ url: testConfig().redisUrl, log: silentLogger, name: 'bench-gate', autoPipelining: true });
await connectRedis(redis);
const gate = new CommandGate(redis, 60);
const eventId = `bench-gate-${Date.now().toString(36)}`;
const response = { status: 201, headers: { Location: `/v1/events/${eventId}/holds/h` }, body: { holdId: 'h', seats: ['A-1-1'] } };
const groups = { redis: localServicePids(ROOT).redis ?? [] };

const outcomes: Record<string, number> = {};
const count = (outcome: string) => (outcomes[outcome] = (outcomes[outcome] ?? 0) + 1);

/** Buyer i's request under `key`: with admission for a command, without for a peek. */
function buyer(i: number, key: string, admission: GateRequest['admission']): GateRequest {
  return { eventId, customer: `c${i % 2000}`, idempotencyKey: key, fingerprint: 'f', admission, inFlightTtlMs: 10_000 };
}

let next = 0;
async function client(): Promise<void> {
  while (next < requests) {
    const i = next++;
    const decision = await gate.begin(buyer(i, `k${i}`, { ratePerS: 1_000_000, burst: 1_000_000 }));
    count(decision.kind);
    if (decision.kind === 'claimed') await gate.store(decision.claim, response);
  }
}

let peeked = 0;
async function loser(): Promise<void> {
  while (peeked < requests) {
    const i = peeked++;
    count(`peek ${(await gate.peek(buyer(i, `loser-${i}`, undefined))).kind}`);
  }
}

/** Runs `concurrency` copies of `work` and measures them: req/s and CPU ms per request. */
async function measure(work: () => Promise<void>) {
  const before = { ingress: ownCpuSeconds(), ...cpuSeconds(groups) };
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, work));
  const seconds = (performance.now() - started) / 1000;
  const cpu = cpuDelta(before, { ingress: ownCpuSeconds(), ...cpuSeconds(groups) });
  const perRequestMs = (s: number | undefined) => (s === undefined ? null : Math.round((s / requests) * 1e6) / 1e3);
  return {
    requests_per_s: Math.round(requests / seconds),
    cpu_ms_per_request: { ingress: perRequestMs(cpu['ingress']), redis: groups.redis.length > 0 ? perRequestMs(cpu['redis']) : null },
  };
}

const result = { requests, concurrency, command: await measure(client), knownSoldLoser: await measure(loser), outcomes };
await forgetEventKeys(redis, eventId);
redis.disconnect();

if (args.json) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
} else {
  const line = (what: string, r: Awaited<ReturnType<typeof measure>>) =>
    `${what}: ${r.requests_per_s} req/s; CPU ms per request: ingress ${r.cpu_ms_per_request.ingress}, Redis ${r.cpu_ms_per_request.redis ?? 'n/a (not the local Redis)'}\n`;
  process.stdout.write(
    `Gate, ${requests} requests per phase, ${concurrency} in flight; outcomes ${JSON.stringify(outcomes)}\n` +
      line('command (begin + store)', result.command) +
      line('known-sold loser (peek)', result.knownSoldLoser),
  );
}
