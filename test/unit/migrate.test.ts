import t from 'tap';
import { CONCURRENTLY, loadMigrations, NO_TRANSACTION, statementsOf } from '../../src/adapters/postgres/migrate.js';

t.test("a no-transaction step's statements: split at each ; outside quotes, dollar-quoted bodies and comments", async (t) => {
  t.same(statementsOf('-- a comment; with a semicolon\nDROP INDEX CONCURRENTLY IF EXISTS i;\nCREATE INDEX CONCURRENTLY i ON t (n);\n'), [
    'DROP INDEX CONCURRENTLY IF EXISTS i',
    'CREATE INDEX CONCURRENTLY i ON t (n)',
  ]);
  t.same(
    statementsOf('SELECT 1; SELECT 2; -- trailing; note\nSELECT 3'),
    ['SELECT 1', 'SELECT 2', 'SELECT 3'],
    'on one line, and a trailing comment',
  );
  t.same(
    statementsOf('DO $$ BEGIN IF true THEN PERFORM 1; END IF; END $$;\nSELECT \';\', "a;b" FROM x;'),
    ['DO $$ BEGIN IF true THEN PERFORM 1; END IF; END $$', 'SELECT \';\', "a;b" FROM x'],
    'a body and strings keep their semicolons',
  );
  t.same(statementsOf("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $fn$ SELECT 1; $fn$;\n/* block; */ SELECT 'it''s;'"), [
    'CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $fn$ SELECT 1; $fn$',
    "SELECT 'it''s;'",
  ]);
});

t.test('the no-transaction migrations split into exactly their statements', async (t) => {
  const steps = await loadMigrations();
  const statements = (version: number) => statementsOf(steps.find((m) => m.version === version)!.sql);
  t.ok(
    steps.filter((m) => m.sql.startsWith(NO_TRANSACTION)).every((m) => [11, 13, 14].includes(m.version)),
    'every marked step is looked at here',
  );
  t.same(statements(11), [
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS holds_ended_by_shard ON holds (event_id, shard, ended_at) WHERE state <> 'live'",
  ]);
  t.same(statements(14), ['CREATE INDEX CONCURRENTLY IF NOT EXISTS seats_by_section ON seats (event_id, section)']);
  t.equal(statements(13).length, 1);
  t.match(statements(13)[0], /^INSERT INTO reservation_seats .* ON CONFLICT \(event_id, seat_id\) DO NOTHING$/s);
});

t.test('which statements are concurrent index work (a longer lock timeout; an invalid index dropped first)', async (t) => {
  t.equal(CONCURRENTLY.exec('CREATE INDEX CONCURRENTLY IF NOT EXISTS holds_x ON holds (a)')?.[2], 'holds_x');
  t.ok(CONCURRENTLY.test('create unique index concurrently i on t (a)'));
  t.ok(CONCURRENTLY.test('DROP INDEX CONCURRENTLY IF EXISTS i'));
  t.ok(CONCURRENTLY.test('REINDEX (VERBOSE) INDEX CONCURRENTLY i'));
  t.notOk(CONCURRENTLY.test("CREATE INDEX i ON t (a) WHERE note <> 'concurrently'"), 'a blocking build that mentions the word');
  t.notOk(CONCURRENTLY.test('ALTER TABLE t ADD COLUMN concurrently int'));
});
