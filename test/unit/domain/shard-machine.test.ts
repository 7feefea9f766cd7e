import t from 'tap';
import { initialTransition, SimulatedClock, transition } from 'xstate';
import {
  createShardActor,
  lifecycleOf,
  shardMachine,
  type ShardActorSnapshot,
  type ShardChange,
  type ShardCommand,
  type ShardMachineEvent,
  type ShardResult,
} from '../../../src/domain/index.js';
import { fixture, hold, rows } from './support/fixtures.js';

const layout = { sections: [{ id: 'A', rows: rows(2, 4) }] };

type Executable = { type: string; params?: unknown; exec?: (info: unknown, params: unknown) => void; info?: unknown };

function command(
  reply: (result: ShardResult, changes: readonly ShardChange[]) => void,
  cmd: ShardCommand = hold('ann', ['A-1-1']),
): ShardMachineEvent {
  return { type: 'COMMAND', command: cmd, reply };
}

/** Runs the actions a pure transition returned, as the actor would. */
function run(actions: readonly Executable[]): void {
  for (const action of actions) action.exec?.(action.info, action.params);
}

t.test('lifecycle as pure transitions: loading → serving → draining → stopped', async (t) => {
  const now = 1_000;
  const { inventory } = fixture(layout);
  const [loading, entry] = initialTransition(shardMachine, { clock: () => now });
  t.equal(lifecycleOf(loading), 'loading');
  t.same(entry, []);

  const replies: ShardResult[] = [];
  const reply = (result: ShardResult) => replies.push(result);
  const [stillLoading, refuse] = transition(shardMachine, loading, command(reply));
  t.equal(stillLoading.value, 'loading');
  t.same(
    refuse.map((a) => [a.type, a.params]),
    [['refuse', { state: 'loading' }]],
  );
  run(refuse as Executable[]);
  t.same(replies.pop(), { ok: false, type: 'not-serving', state: 'loading', retryable: true, message: 'shard is loading; retry' });

  const [serving, onLoad] = transition(shardMachine, loading, { type: 'LOAD', inventory });
  t.equal(serving.value, 'serving');
  t.equal(serving.context.inventory, inventory);
  const timer = onLoad.find((a) => a.type === 'xstate.raise') as { params: { delay: number } } | undefined;
  t.equal(timer?.params.delay, 1000, 'with no hold, the expiry check is scheduled at the maximum delay');

  const [afterCommand, decide] = transition(shardMachine, serving, command(reply));
  t.equal(afterCommand.value, 'serving');
  t.same(
    decide.map((a) => a.type),
    ['decide'],
    'a command is one action, no state change',
  );
  t.equal(afterCommand.context, serving.context, 'no context copy per command');
  run(decide as Executable[]);
  t.match(replies.pop(), { ok: true, type: 'held' });

  const [draining] = transition(shardMachine, afterCommand, { type: 'DRAIN' });
  t.equal(draining.value, 'draining');
  const [stillDraining, refuseDraining] = transition(shardMachine, draining, command(reply));
  t.equal(stillDraining.value, 'draining');
  run(refuseDraining as Executable[]);
  t.match(replies.pop(), { type: 'not-serving', state: 'draining', retryable: true });
  const [, expireWhileDraining] = transition(shardMachine, draining, { type: 'EXPIRE' });
  t.same(expireWhileDraining, [], 'no expiry while handing off');

  const [stopped] = transition(shardMachine, draining, { type: 'DRAINED' });
  t.equal(stopped.value, 'stopped');
  t.equal(stopped.status, 'active', 'not an XState final state: it keeps answering');
  const [, refuseStopped] = transition(shardMachine, stopped, command(reply));
  run(refuseStopped as Executable[]);
  t.match(replies.pop(), { type: 'not-serving', state: 'stopped' });
  const [stillStopped] = transition(shardMachine, stopped, { type: 'LOAD', inventory });
  t.equal(stillStopped.value, 'stopped', 'terminal');
});

t.test('fenced is reachable from loading, serving and draining, and terminal', async (t) => {
  const { inventory } = fixture(layout);
  const [loading] = initialTransition(shardMachine, { clock: () => 0 });
  const [serving] = transition(shardMachine, loading, { type: 'LOAD', inventory });
  const [draining] = transition(shardMachine, serving, { type: 'DRAIN' });
  for (const from of [loading, serving, draining] as ShardActorSnapshot[]) {
    const [fenced] = transition(shardMachine, from, { type: 'FENCE', reason: 'epoch 7 > 6' });
    t.equal(fenced.value, 'fenced', `from ${String(from.value)}`);
    t.equal(fenced.context.fenceReason, 'epoch 7 > 6');
    for (const event of [{ type: 'LOAD', inventory }, { type: 'DRAIN' }, { type: 'DRAINED' }, { type: 'RELOAD' }] as ShardMachineEvent[]) {
      t.equal(transition(shardMachine, fenced, event)[0].value, 'fenced', `${event.type} leaves it fenced`);
    }
    const replies: ShardResult[] = [];
    run(
      transition(
        shardMachine,
        fenced,
        command((r) => replies.push(r)),
      )[1] as Executable[],
    );
    t.same(replies, [{ ok: false, type: 'not-serving', state: 'fenced', retryable: true, message: 'shard is fenced: epoch 7 > 6; retry' }]);
  }
});

t.test('RELOAD drops the inventory until LOAD brings a restored one', async (t) => {
  const { inventory } = fixture(layout);
  const [loading] = initialTransition(shardMachine, { clock: () => 0 });
  const [serving] = transition(shardMachine, loading, { type: 'LOAD', inventory });
  const [reloading] = transition(shardMachine, serving, { type: 'RELOAD' });
  t.equal(reloading.value, 'loading');
  t.equal(reloading.context.inventory, null);
  const [, expire] = transition(shardMachine, reloading, { type: 'EXPIRE' });
  t.same(expire, [], 'nothing to expire while loading');
});

t.test('a command finds due holds expired first (timers may run late)', async (t) => {
  let now = 1_000;
  const { inventory } = fixture(layout, { settings: { holdTtlMs: 100 } });
  inventory.decide(hold('ann', ['A-1-1']), now);
  const [loading] = initialTransition(shardMachine, { clock: () => now });
  const [serving] = transition(shardMachine, loading, { type: 'LOAD', inventory });
  now = 1_100;
  const replies: ShardResult[] = [];
  const [, actions] = transition(
    shardMachine,
    serving,
    command((r) => replies.push(r), hold('bob', ['A-1-1'])),
  );
  t.same(
    actions.map((a) => a.type),
    ['persistExpired', 'decide'],
    'expiry changes go to persistExpired before the decision',
  );
  const persist = actions[0] as { params: { changes: ShardChange[] } };
  t.same(
    persist.params.changes.map((c) => c.type),
    ['seat', 'hold-ended'],
  );
  run(actions as Executable[]);
  t.match(replies, [{ ok: true, type: 'held', hold: { customer: 'bob', seats: ['A-1-1'] } }], 'the seat was free for bob');
});

t.test('the actor schedules expiry itself and persists through the provided action', async (t) => {
  const timers = new SimulatedClock();
  const persisted: ShardChange[][] = [];
  const { inventory } = fixture(layout, { settings: { holdTtlMs: 5_000 } });
  const actor = createShardActor({
    clock: () => timers.now(),
    timers,
    inventory,
    persistExpired: (changes) => persisted.push([...changes]),
  });
  t.equal(lifecycleOf(actor.getSnapshot()), 'serving');

  let answer: { result: ShardResult; changes: readonly ShardChange[] } | undefined;
  actor.send(command((result, changes) => (answer = { result, changes })));
  t.match(answer?.result, { ok: true, type: 'held', hold: { expiresAt: 5_000 } });
  t.equal(answer?.changes.length, 3);

  timers.increment(1_000); // the idle check, 1 s after LOAD: nothing due, re-armed for the hold's expiry
  t.same(persisted, []);
  timers.increment(3_999);
  t.same(persisted, [], 'not a millisecond early');
  timers.increment(1);
  t.equal(persisted.length, 1, 'expired exactly at expiresAt');
  t.same(
    persisted[0]!.map((c) => c.type),
    ['seat', 'hold-ended'],
  );
  t.equal(inventory.counts().overall.held, 0);

  actor.send({ type: 'EXPIRE' });
  t.equal(persisted.length, 1, 'an engine-sent EXPIRE with nothing due persists nothing');
  actor.send({ type: 'FENCE', reason: 'lost lease' });
  let refused: ShardResult | undefined;
  actor.send(command((result) => (refused = result)));
  t.match(refused, { type: 'not-serving', state: 'fenced' });
  actor.stop();
});

t.test('actor without an inventory waits in loading and answers at once', async (t) => {
  const actor = createShardActor({ clock: () => 0, persistExpired: () => {} });
  let refused: ShardResult | undefined;
  actor.send(command((result) => (refused = result)));
  t.match(refused, { type: 'not-serving', state: 'loading' });
  actor.stop();
});

t.test('a hold created while the timer idles still expires on time (short TTL)', async (t) => {
  const timers = new SimulatedClock();
  const persisted: ShardChange[][] = [];
  const { inventory } = fixture(layout, { settings: { holdTtlMs: 100 } });
  const actor = createShardActor({
    clock: () => timers.now(),
    timers,
    inventory,
    persistExpired: (changes) => persisted.push([...changes]),
  });
  timers.increment(50);
  actor.send(command(() => {}));
  timers.increment(99);
  t.same(persisted, [], 'not before expiresAt = 150');
  timers.increment(1);
  t.equal(persisted.length, 1, 'expired at 150 although the idle timer was set before the hold existed');
  actor.stop();
});

t.test('a decision or an expiry that throws goes to onFault; the actor lives on and nothing is rethrown later', async (t) => {
  const timers = new SimulatedClock();
  const { inventory } = fixture(layout, { settings: { holdTtlMs: 100 } });
  const faults: unknown[] = [];
  const actor = createShardActor({
    clock: () => timers.now(),
    timers,
    inventory,
    persistExpired: () => {},
    onFault: (e) => faults.push(e),
  });
  const uncaught: unknown[] = [];
  const onUncaught = (error: unknown) => uncaught.push(error);
  process.on('uncaughtException', onUncaught);
  t.teardown(() => process.off('uncaughtException', onUncaught));

  let answered = false;
  actor.send(command(() => (answered = true)));
  t.ok(answered, 'a hold, decided normally');
  const decide = inventory.decide.bind(inventory);
  inventory.decide = () => {
    throw new Error('a bug in decide');
  };
  answered = false;
  actor.send(command(() => (answered = true), hold('bob', ['A-1-2'])));
  t.notOk(answered, 'no answer from a decision that threw');
  t.match(faults, [{ message: 'a bug in decide' }]);
  inventory.decide = decide;

  inventory.expireDue = () => {
    throw new Error('a bug in expiry');
  };
  timers.increment(1_000); // the expiry timer fires
  t.match(faults, [{ message: 'a bug in decide' }, { message: 'a bug in expiry' }]);
  t.equal(actor.getSnapshot().status, 'active', 'the actor was not stopped by XState');
  await new Promise((resolve) => setTimeout(resolve, 20));
  t.same(uncaught, [], 'and XState rethrew nothing in a timer of its own (which would end the process)');
  actor.stop();
});
