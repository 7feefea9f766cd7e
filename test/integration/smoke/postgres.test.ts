import t from 'tap';
import { createPgPool } from '../../../src/adapters/postgres/pool.js';
import { loadMigrations, migrate } from '../../../src/adapters/postgres/migrate.js';
import { SentinelError } from '../../../src/errors.js';
import { silentLogger } from '../../../src/log.js';
import { testConfig } from '../../support/env.js';

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
