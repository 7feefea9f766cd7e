import type pg from 'pg';
import t from 'tap';
import { InventoryStore } from '../../../src/adapters/postgres/inventory-store.js';
import { emptyBatchWrite, type BatchWrite } from '../../../src/engine/batch-write.js';
import { groupParts } from '../../../src/engine/shard-commits.js';

/** A part of `rows` idempotency records whose usage names `customers`. */
function part(shard: number, rows: number, customers: string[] = []) {
  const batch: BatchWrite = emptyBatchWrite();
  for (let i = 0; i < rows; i++)
    batch.idempotency.push({ key: `k${i}`, customer: 'x', fingerprint: 'f', result: { ok: true, type: 'released', holdId: 'h' }, at: 0 });
  for (const customer of customers) batch.usage.set(customer, 1);
  return { shard, epoch: 1, batch };
}

const shardsOf = (groups: { shard: number }[][]) => groups.map((g) => g.map((p) => p.shard));

t.test('parts go together in arrival order while they fit', async (t) => {
  t.same(shardsOf(groupParts([part(0, 10), part(1, 10), part(2, 10)], 100)), [[0, 1, 2]]);
  t.same(
    shardsOf(groupParts([part(0, 60), part(1, 60), part(2, 30)], 100)),
    [[0, 2], [1]],
    'a part that does not fit starts a commit; later ones fill the first that has room',
  );
  t.same(shardsOf(groupParts([part(0, 500), part(1, 1)], 100)), [[0], [1]], 'a part over the bound goes alone');
  t.same(shardsOf(groupParts([], 100)), []);
});

t.test("no customer's usage in two parts of one commit", async (t) => {
  const rows = 1; // usage counts as rows too: each part here is 1 + its customers
  t.same(shardsOf(groupParts([part(0, rows, ['alice']), part(1, rows, ['bob']), part(2, rows, ['alice', 'carol'])], 100)), [[0, 1], [2]]);
  t.same(shardsOf(groupParts([part(0, rows, ['alice']), part(1, rows, ['alice']), part(2, rows, ['alice'])], 100)), [[0], [1], [2]]);
  t.same(shardsOf(groupParts([part(0, rows, ['alice']), part(1, rows, ['bob']), part(2, rows, ['bob'])], 100)), [[0, 1], [2]]);
});

t.test(
  'a commit of several refused by Postgres is refused; one whose connection or server was terminated has no known outcome',
  async (t) => {
    const failingWith = (code: string) =>
      new InventoryStore({
        query: async () => Promise.reject(Object.assign(new Error(`failed with ${code}`), { code })),
      } as unknown as pg.Pool);
    const commit = (code: string) => failingWith(code).commitShards('e', 4, [part(0, 1), part(1, 1)], 'topic');
    for (const code of ['SNFEN', 'SNLIM', '40P01', '57014', '23505']) t.equal(await commit(code), 'refused', code);
    // Terminations can come after the commit landed (an administrator's, a shutdown's, a crash's).
    for (const code of ['57P01', '57P02', '57P03', '08006', 'ECONNRESET']) await t.rejects(commit(code), code);
  },
);
