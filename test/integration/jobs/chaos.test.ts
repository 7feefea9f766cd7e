/**
 * A short chaos run through the CLI, the way an SRE runs it: its own engines and ingress, an
 * engine SIGKILLed, another SIGSTOPped past its lease and resumed, a Redis restart and the ingress
 * SIGKILLed — all during a flash-sale load — then verify. Every invariant must hold and every
 * fault must be reported with its time and effect.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import t from 'tap';
import { connectRedis, createRedis } from '../../../src/adapters/redis/client.js';
import { silentLogger } from '../../../src/log.js';
import { testConfig } from '../../support/env.js';

const run = promisify(execFile);

t.test('sentinel chaos: faults during a load, then verify passes', async (t) => {
  const args = [
    'bin/sentinel.js',
    'chaos',
    '--json',
    '--scenario',
    'flash-sale',
    '--layout',
    '4x10x20',
    '--shards',
    '4',
    '--rate',
    '60',
    '--duration',
    '22s',
    '--lease-ttl',
    '2s',
    '--faults',
    '3s:engine-kill,8s:engine-pause=5s,14s:redis-restart,17s:ingress-kill',
  ];
  const result = await run(process.execPath, args, { env: process.env, maxBuffer: 64 * 1024 * 1024, timeout: 150_000 }).catch(
    (e: { code: number; stdout: string; stderr: string }) => e,
  );
  const report = JSON.parse(result.stdout) as {
    ok: boolean;
    event: string;
    faults: { kind: string; at_s: number; detail: string; error: string | null; recovered_s: number | null; effect: { ok: number } }[];
    stress: { requests: number; status: Record<string, number> };
    verify: { ok: boolean; violations: unknown[] };
    recovery_s: number | null;
  };
  t.equal(report.verify.ok, true, JSON.stringify(report.verify.violations, null, 2));
  t.equal(report.ok, true);
  t.equal((result as { code?: number }).code ?? 0, 0, 'exit 0');
  t.same(
    report.faults.map((f) => f.kind),
    ['engine-kill', 'engine-pause', 'redis-restart', 'ingress-kill'],
  );
  for (const fault of report.faults) {
    t.equal(fault.error, null, `${fault.kind} injected`);
    t.ok(fault.at_s > 0 && fault.detail.length > 0, `${fault.kind}: ${fault.detail}`);
    t.type(fault.effect?.ok, 'number', `${fault.kind}: what clients saw until the next fault is reported`);
  }
  const [kill, pause] = report.faults;
  t.match(kill!.detail, /SIGKILL .* shards re-owned by another engine/);
  t.ok(kill!.recovered_s !== null && kill!.recovered_s < 15, `shards re-owned after ${kill!.recovered_s} s`);
  // Paused for 5 s with 2 s leases: its shards are taken over while it is stopped; after SIGCONT the
  // fence refused its commits (seen in its log) or, if it committed nothing, refuses them by design.
  t.match(
    pause!.detail,
    /SIGSTOP .* for 5 s, then SIGCONT; [1-9]\d*\/\d+ shards taken over .*the epoch fence (refused its commits on [1-9]\d* shard|refuses its commits)/,
  );
  t.ok(report.recovery_s !== null, 'every shard owned again after the load');
  t.ok(report.stress.requests > 500, `${report.stress.requests} requests`);
  t.ok((report.stress.status['201'] ?? 0) > 100);
  // The event it provisioned is closed, and its thousands of Idempotency-Key records are gone.
  const redis = createRedis({ url: testConfig().redisUrl, log: silentLogger, name: 'chaos-test' });
  await connectRedis(redis);
  t.teardown(() => redis.disconnect());
  const left: string[] = [];
  for await (const keys of redis.scanStream({ match: `sentinel:{${report.event}}:*`, count: 10_000 }) as AsyncIterable<string[]>)
    left.push(...keys);
  t.same(left, [], `no Redis key of ${report.event} is left`);
});
