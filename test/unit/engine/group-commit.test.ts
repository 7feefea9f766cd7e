import t from 'tap';
import { GroupCommitter } from '../../../src/engine/group-commit.js';

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('entries within the window commit together; one commit at a time; the next batch fills meanwhile', async (t) => {
  const batches: number[][] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const committer = new GroupCommitter<number>({ windowMs: 5, maxBatch: 100 }, async (batch) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    batches.push(batch);
    await tick(20);
    inFlight--;
  });
  for (let i = 0; i < 10; i++) committer.add(i);
  await tick(10); // first batch committing now
  for (let i = 10; i < 15; i++) committer.add(i);
  await committer.flush();
  t.same(batches, [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [10, 11, 12, 13, 14],
  ]);
  t.equal(maxInFlight, 1, 'never two commits at once');
});

t.test('a full batch commits without waiting for the window; close returns what was not committed', async (t) => {
  const batches: number[][] = [];
  const committer = new GroupCommitter<number>({ windowMs: 10_000, maxBatch: 3 }, async (batch) => {
    batches.push(batch);
    await tick(5);
  });
  for (let i = 0; i < 3; i++) committer.add(i);
  await tick(1);
  t.same(batches, [[0, 1, 2]], 'committed at once when full');
  committer.add(3);
  t.same(committer.close(), [3]);
  t.throws(() => committer.add(4), /closed/);
});

t.test('update changes only the entries waiting for the next commit', async (t) => {
  const batches: number[][] = [];
  let during!: () => void;
  const committer = new GroupCommitter<number>({ windowMs: 1, maxBatch: 100 }, async (batch) => {
    batches.push(batch);
    if (batches.length === 1) {
      committer.add(10);
      committer.add(11);
      committer.update((n) => n * 100); // as a commit does when it undoes a decision
      during();
    }
    await tick(5);
  });
  const updated = new Promise<void>((resolve) => (during = resolve));
  committer.add(1);
  committer.add(2);
  await updated;
  await committer.flush();
  t.same(batches, [
    [1, 2],
    [1000, 1100],
  ]);
});
