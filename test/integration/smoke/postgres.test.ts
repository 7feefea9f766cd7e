import t from 'tap';
import { createPgPool } from '../../../src/adapters/postgres/pool.js';
import { migrate } from '../../../src/adapters/postgres/migrate.js';
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
