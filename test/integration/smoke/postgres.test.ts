import pg from 'pg';
import { pino } from 'pino';
import t from 'tap';
import { createPgPool } from '../../../src/adapters/postgres/pool.js';
import { LOCK_TIMEOUT_MS, loadMigrations, migrate, NO_TRANSACTION } from '../../../src/adapters/postgres/migrate.js';
import { SentinelError } from '../../../src/errors.js';
import { silentLogger } from '../../../src/log.js';
import { testConfig } from '../../support/env.js';
import { ownDatabase } from '../../support/stack.js';

t.test('postgres: migrations table exists, a row round-trips', async (t) => {
  const config = testConfig();
  const pool = createPgPool({ url: config.databaseUrl, max: 4, log: silentLogger });
  t.teardown(() => pool.end());

  // Two concurrent runs: the advisory lock makes each step apply exactly once.
  await Promise.all([migrate(pool, silentLogger), migrate(pool, silentLogger)]);
  const versions = await pool.query<{ version: number }>('SELECT version FROM sentinel_schema_migrations ORDER BY version');
  t.ok(versions.rows.length >= 1, 'migrations recorded');
  t.same(await migrate(pool, silentLogger), [], 'a second run applies nothing');

  await pool.query('CREATE TEMP TABLE smoke (id int primary key, note text)');
  const client = await pool.connect();
  try {
    await client.query('CREATE TEMP TABLE smoke_rt (id int primary key, note text)');
    await client.query('INSERT INTO smoke_rt VALUES ($1, $2)', [1, 'hello']);
    const read = await client.query<{ note: string }>('SELECT note FROM smoke_rt WHERE id = 1');
    t.equal(read.rows[0]?.note, 'hello');
  } finally {
    client.release();
  }
});

t.test('a migration edited after it was applied is refused, and nothing is applied', async (t) => {
  const pool = createPgPool({ url: testConfig().databaseUrl, max: 2, log: silentLogger });
  t.teardown(() => pool.end());
  await migrate(pool, silentLogger);
  const steps = await loadMigrations();
  const last = steps[steps.length - 1]!;
  const edited = [...steps.slice(0, -1), { ...last, sql: `${last.sql}\n-- edited` }, { version: 9999, name: 'later', sql: 'SELECT 1' }];
  const refused = await migrate(pool, silentLogger, edited).then(
    () => undefined,
    (error: unknown) => error,
  );
  t.ok(refused instanceof SentinelError && refused.code === 'migration_changed', 'a migration_changed error');
  t.match((refused as Error).message, `${String(last.version).padStart(4, '0')}_${last.name} changed after it was applied`);
  t.equal(
    (await pool.query('SELECT 1 FROM sentinel_schema_migrations WHERE version = 9999')).rowCount,
    0,
    'the later step was not applied',
  );

  // A step recorded before checksums were: it gets its checksum, and an edit is caught from then on.
  await pool.query('UPDATE sentinel_schema_migrations SET checksum = NULL WHERE version = $1', [last.version]);
  t.same(await migrate(pool, silentLogger), []);
  const { rows } = await pool.query<{ checksum: string | null }>('SELECT checksum FROM sentinel_schema_migrations WHERE version = $1', [
    last.version,
  ]);
  t.match(rows[0]?.checksum, /^[0-9a-f]{64}$/);
  await t.rejects(migrate(pool, silentLogger, edited), { code: 'migration_changed' });
});

t.test('a step marked no-transaction runs statement by statement (CREATE INDEX CONCURRENTLY), and again from its start', async (t) => {
  const pool = await ownDatabase(t, 'migrate_notx');
  const steps = await loadMigrations();
  await pool.query('CREATE TABLE notx (id int PRIMARY KEY, n int)');
  const step = {
    version: 9001,
    name: 'concurrently',
    sql: `${NO_TRANSACTION}\n-- a comment; with a semicolon\nDROP INDEX CONCURRENTLY IF EXISTS notx_n;\nCREATE INDEX CONCURRENTLY notx_n ON notx (n);\n`,
  };
  t.same(await migrate(pool, silentLogger, [...steps, step]), [9001]);
  const { rows } = await pool.query<{ valid: boolean }>(`SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = 'notx_n'::regclass`);
  t.same(rows, [{ valid: true }]);
  // Not recorded (a failure after its statements ran): the next run starts it over, and it holds.
  await pool.query('DELETE FROM sentinel_schema_migrations WHERE version = 9001');
  t.same(await migrate(pool, silentLogger, [...steps, step]), [9001]);
});

t.test('a step that cannot have its lock gives it up, so others queued behind it go on, and is tried again', async (t) => {
  const pool = await ownDatabase(t, 'migrate_lock');
  const steps = await loadMigrations();
  await pool.query('CREATE TABLE busy (id int PRIMARY KEY)');
  // A connection of its own: the step and the reader below take the pool's two.
  const holder = new pg.Client({ connectionString: pool.options.connectionString });
  await holder.connect();
  t.teardown(() => holder.end());
  await holder.query('BEGIN; LOCK TABLE busy IN ACCESS SHARE MODE');
  const lines: { msg?: string; attempt?: number }[] = [];
  const log = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line) as { msg?: string; attempt?: number }) });
  const started = Date.now();
  const migrating = migrate(pool, log, [...steps, { version: 9002, name: 'alter', sql: 'ALTER TABLE busy ADD COLUMN note text' }]);
  // While the step waits for its lock, a reader queued behind it is held up at most one lock timeout.
  await new Promise((resolve) => setTimeout(resolve, 500));
  const read = Date.now();
  await pool.query('SELECT count(*) FROM busy');
  t.ok(Date.now() - read <= LOCK_TIMEOUT_MS + 1000, `a read queued behind the waiting step went on after ${Date.now() - read} ms`);
  // Held for two lock timeouts: without one, the reader above would have waited all that time.
  await new Promise((resolve) => setTimeout(resolve, 2 * LOCK_TIMEOUT_MS + 500 - (Date.now() - started)));
  await holder.query('COMMIT');
  t.same(await migrating, [9002], 'applied once the lock was free');
  t.ok(
    lines.some((l) => l.msg === 'Migration waits for a lock; trying again' && l.attempt === 1),
    'the wait was logged',
  );
  t.same(
    (await pool.query('SELECT note FROM busy')).fields.map((f) => f.name),
    ['note'],
  );
});

t.test('two migrates at once over a step that builds an index concurrently: one builds, the other waits, both succeed', async (t) => {
  const pool = await ownDatabase(t, 'migrate_two');
  const steps = await loadMigrations();
  await pool.query('CREATE TABLE twice (id int PRIMARY KEY, n int)');
  await pool.query('INSERT INTO twice SELECT i, i FROM generate_series(1, 200000) AS i');
  // Two pools: each migrate holds a connection, and the other must not wait for the pool instead.
  // The production pool, whose idle clients' errors are logged: a plain pg.Pool without an error
  // listener crashed the test (CI, once) when the teardown's DROP DATABASE … WITH (FORCE) ended a
  // connection the pool had let go of but that had not closed yet — pool.end() resolves first.
  const other = createPgPool({ url: String(pool.options.connectionString), max: 2, log: silentLogger });
  t.teardown(() => other.end());
  const step = { version: 9003, name: 'twice', sql: `${NO_TRANSACTION}\nCREATE INDEX CONCURRENTLY IF NOT EXISTS twice_n ON twice (n);\n` };
  const results = await Promise.all([migrate(pool, silentLogger, [...steps, step]), migrate(other, silentLogger, [...steps, step])]);
  t.same(results.flat(), [9003], 'applied once');
  const { rows } = await pool.query<{ valid: boolean }>(`SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = 'twice_n'::regclass`);
  t.same(rows, [{ valid: true }]);
});
