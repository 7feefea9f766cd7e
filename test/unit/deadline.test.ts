import t from 'tap';
import { withDeadline } from '../../src/deadline.js';

const after = <T>(ms: number, outcome: () => T) => new Promise<T>((resolve) => setTimeout(() => resolve(outcome()), ms));

t.test('settles as the work does when it is in time', async (t) => {
  t.equal(await withDeadline(Promise.resolve(42), 1000), 42);
  await t.rejects(withDeadline(Promise.reject(new Error('refused')), 1000), { message: 'refused' });
  await t.rejects(withDeadline(Promise.reject('a string'), 1000), { message: 'a string' }, 'a non-Error rejection becomes an Error');
});

t.test('rejects at the deadline when the work hangs, and ignores its late outcome', async (t) => {
  const started = Date.now();
  await t.rejects(
    withDeadline(
      after(200, () => 'late'),
      20,
    ),
    { message: 'no answer within 20 ms' },
  );
  t.ok(Date.now() - started < 150, 'did not wait for the work');
  await t.rejects(withDeadline(new Promise(() => undefined), 0), { message: 'no answer within 0 ms' }, 'a deadline already past');
});

t.test("the error at the deadline can be the caller's own", async (t) => {
  class Late extends Error {}
  const error: unknown = await withDeadline(new Promise(() => undefined), 5, () => new Late('too slow')).catch((e: unknown) => e);
  t.ok(error instanceof Late, 'the error late() made');
  t.equal(await withDeadline(Promise.resolve('on time'), 5, () => new Late('too slow')), 'on time');
});
