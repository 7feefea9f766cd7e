/**
 * A database of its own, created afresh, for the test suite and for each benchmark run.
 *
 * The development database (`DATABASE_URL`, `sentinel` by default) keeps whatever is created in
 * it: tests make unique events and never delete them, so after many runs it held a million seat
 * rows, and its size and statistics changed what Postgres costs per command — timeouts in tests
 * that never failed on a small database, and benchmark figures that depended on history. The
 * suite (`hack/test.sh`) and every bench run therefore recreate a database of their own on the
 * same server; it is left in place for inspection and dropped by the next run.
 *
 *   eval "$(npx tsx hack/fresh-database.ts sentinel_test)"   # prints `export DATABASE_URL=…`
 */
import { pathToFileURL } from 'node:url';
import { createPgPool } from '../src/adapters/postgres/pool.js';
import { loadConfig } from '../src/config.js';
import { silentLogger } from '../src/log.js';

const NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * Drops `name` (whoever is connected to it) and creates it empty, on the server of this process's
 * `DATABASE_URL`; points DATABASE_URL (this process and its children) at it and returns that URL.
 */
export async function useFreshDatabase(name: string): Promise<string> {
  if (!NAME.test(name)) throw new Error(`not a plain database name: ${JSON.stringify(name)}`);
  const base = new URL(loadConfig(process.env).databaseUrl);
  if (base.pathname === `/${name}`) throw new Error(`refusing to recreate the database DATABASE_URL names (${name})`);
  const admin = createPgPool({ url: base.toString(), max: 1, log: silentLogger, applicationName: 'fresh-database' });
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  base.pathname = `/${name}`;
  process.env['DATABASE_URL'] = base.toString();
  return base.toString();
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const name = process.argv[2];
  if (name === undefined || process.argv.length > 3) {
    console.error('usage: tsx hack/fresh-database.ts NAME   (prints `export DATABASE_URL=…` for the recreated database)');
    process.exit(2);
  }
  useFreshDatabase(name).then(
    (url) => console.log(`export DATABASE_URL=${url}`),
    (error: unknown) => {
      console.error(`fresh-database: ${error instanceof Error ? error.message : String(error)}`);
      process.exit(1);
    },
  );
}
