/**
 * The benchmarks' own database, created afresh for each run. The shared development database
 * grows with every test run (events are never deleted), and its size and its statistics change
 * what Postgres costs per command; a fresh database makes a run comparable with the next one, on
 * this machine or any other. It is left in place for inspection and dropped by the next run.
 */
import { createPgPool } from '../src/adapters/postgres/pool.js';
import { loadConfig } from '../src/config.js';
import { silentLogger } from '../src/log.js';

export const BENCH_DATABASE = 'sentinel_bench';

/** Recreates the bench database and points DATABASE_URL (this process and its children) at it. */
export async function useFreshBenchDatabase(): Promise<string> {
  const base = loadConfig(process.env).databaseUrl;
  const admin = createPgPool({ url: base, max: 1, log: silentLogger, applicationName: 'bench-setup' });
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${BENCH_DATABASE} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${BENCH_DATABASE}`);
  } finally {
    await admin.end();
  }
  const url = new URL(base);
  url.pathname = `/${BENCH_DATABASE}`;
  process.env['DATABASE_URL'] = url.toString();
  return url.toString();
}
