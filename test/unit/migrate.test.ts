import t from 'tap';
import { loadMigrations, NO_TRANSACTION, statementsOf } from '../../src/adapters/postgres/migrate.js';

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

t.test('each no-transaction migration splits into statements that run alone (no two in one, none empty)', async (t) => {
  const marked = (await loadMigrations()).filter((m) => m.sql.startsWith(NO_TRANSACTION));
  t.ok(marked.length > 0);
  for (const step of marked) {
    const statements = statementsOf(step.sql);
    t.ok(statements.length > 0, `${step.name}: statements`);
    for (const statement of statements) {
      const outsideBodies = statement.replace(/\$([A-Za-z_]\w*)?\$[\s\S]*?\$\1\$/g, '$$$$');
      t.notMatch(outsideBodies, /;/, `${step.name}: one statement: ${statement.slice(0, 60)}`);
    }
  }
});
