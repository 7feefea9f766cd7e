import t from 'tap';
import { WorkQueue } from '../../../src/operator/work-queue.js';

t.test('a key is queued once, and never handed to two workers at once', async (t) => {
  const queue = new WorkQueue();
  queue.add('a');
  queue.add('a');
  queue.add('b');
  t.equal(queue.depth, 2);
  const first = await queue.get();
  t.equal(first, 'a');
  queue.add('a'); // changed while being reconciled
  t.equal(await queue.get(), 'b', 'a is not handed out again while in progress');
  t.equal(queue.depth, 0);
  queue.done('a');
  t.equal(queue.depth, 1, 'requeued once done, because it changed meanwhile');
  t.equal(await queue.get(), 'a');
  queue.done('a');
  queue.done('b');
  await queue.shutdown();
});

t.test('a waiting worker gets a key as soon as it is added', async (t) => {
  const queue = new WorkQueue();
  const waiting = queue.get();
  queue.add('x');
  t.equal(await waiting, 'x');
  queue.done('x');
  await queue.shutdown();
});

t.test('delayed adds keep the earliest deadline', async (t) => {
  const queue = new WorkQueue();
  queue.addAfter('k', 10_000);
  queue.addAfter('k', 20);
  queue.addAfter('k', 5_000);
  const started = Date.now();
  t.equal(await queue.get(), 'k');
  t.ok(Date.now() - started < 1000, 'the 20 ms deadline won');
  queue.done('k');
  await queue.shutdown();
});

t.test('a step back of the wall clock does not let a longer requeue replace a pending shorter one', async (t) => {
  const queue = new WorkQueue();
  queue.addAfter('k', 20);
  // The wall clock steps back ten seconds (an NTP correction) before the next requeue of the key.
  const wall = Date.now;
  const stepped = wall() - 10_000;
  Date.now = () => stepped;
  t.teardown(() => (Date.now = wall));
  queue.addAfter('k', 5_000);
  Date.now = wall;
  const started = performance.now();
  t.equal(await queue.get(), 'k');
  t.ok(performance.now() - started < 1000, 'the 20 ms deadline still won');
  queue.done('k');
  await queue.shutdown();
});

t.test('failures back off exponentially per key until forgotten', async (t) => {
  const queue = new WorkQueue({ baseMs: 100, maxMs: 1000 });
  t.same(
    [1, 2, 3, 4, 5].map(() => queue.addRateLimited('k')),
    [100, 200, 400, 800, 1000],
  );
  t.equal(queue.failuresOf('k'), 5);
  queue.forget('k');
  t.equal(queue.addRateLimited('k'), 100);
  t.equal(queue.addRateLimited('other'), 100, 'per key');
  await queue.shutdown();
});

t.test('shutdown releases waiting workers and waits for keys in progress', async (t) => {
  const queue = new WorkQueue();
  queue.add('busy');
  const key = await queue.get();
  const idle = queue.get();
  let stopped = false;
  const shutdown = queue.shutdown().then(() => (stopped = true));
  t.equal(await idle, undefined);
  await new Promise((r) => setTimeout(r, 10));
  t.equal(stopped, false, 'still waiting for busy');
  queue.done(key as string);
  await shutdown;
  t.equal(stopped, true);
  queue.add('late');
  t.equal(await queue.get(), undefined, 'nothing is handed out after shutdown');
});
