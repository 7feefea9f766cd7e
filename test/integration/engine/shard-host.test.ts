/**
 * A shard host on real NATS with a scripted decider: one command that cannot be decided (a bug)
 * gets an error of its own, and the other commands of its message still get their answers.
 */
import t from 'tap';
import { connectNats } from '../../../src/adapters/nats/connection.js';
import { InventoryStore } from '../../../src/adapters/postgres/inventory-store.js';
import type { ShardCommand, ShardResult } from '../../../src/domain/commands.js';
import { EngineMetrics } from '../../../src/engine/metrics.js';
import { ShardClient, ShardError } from '../../../src/engine/shard-client.js';
import { ShardHost } from '../../../src/engine/shard-host.js';
import { silentLogger } from '../../../src/log.js';
import { testConfig, uniqueName } from '../../support/env.js';
import { testDatabase } from '../../support/stack.js';

t.test('a command the decider throws on is answered with an error; its batch-mates are answered', async (t) => {
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const nc = await connectNats({ url: testConfig().natsUrl, log: silentLogger, name: 'shard-host-test' });
  t.teardown(() => nc.close());
  const eventId = uniqueName('host');
  const decided: string[] = [];
  const host = new ShardHost({
    eventId,
    shard: 0,
    epoch: 1,
    customerLimit: 4,
    topic: 'unused',
    batchWindowMs: 2,
    batchMax: 64,
    decider: {
      decide(command: ShardCommand) {
        if (command.key === 'boom') throw new Error('a bug in the decider');
        decided.push(command.key);
        const result: ShardResult = { ok: false, type: 'unavailable', seats: ['A-1-1'], message: 'taken' };
        return { result, changes: [] };
      },
      abort: () => false,
      drain: () => undefined,
      fence: () => undefined,
      stop: () => undefined,
    },
    store: new InventoryStore(pool),
    nc,
    log: silentLogger,
    metrics: new EngineMetrics(),
    now: Date.now,
    onStopped: () => undefined,
    onOutbox: () => undefined,
  });
  host.start();
  t.teardown(() => host.handOff('closed'));
  await nc.flush();

  const client = new ShardClient(nc);
  const send = (key: string) =>
    client.send(eventId, 0, { type: 'reserve', key, customer: key, seat: 'A-1-1' }, { deadlineMs: 2000 }).catch((e: unknown) => e);
  const [first, boom, last] = await Promise.all([send('first'), send('boom'), send('last')]);
  t.match(first, { type: 'unavailable' });
  t.match(last, { type: 'unavailable' }, 'the command after the failed one was still decided and answered');
  t.type(boom, ShardError);
  t.match(boom, { code: 'decide_failed', retryable: false }, 'not retryable: the same command would fail again');
  t.same(decided, ['first', 'last'], 'all three came in one message, in order');
});
