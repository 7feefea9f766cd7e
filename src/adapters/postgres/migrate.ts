import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { SentinelError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { translatePgError } from './errors.js';
import { checkout } from './pool.js';

const MIGRATIONS_DIR = fileURLToPath(new URL('./migrations/', import.meta.url));
// An arbitrary constant: the advisory lock that serialises concurrent `migrate` runs.
const MIGRATION_LOCK = 0x5e47_1e1;

/** One versioned schema step, from `migrations/NNNN_name.sql`. */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

/** Reads the migration files in version order. */
export async function loadMigrations(dir: string = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f)).sort();
  return Promise.all(
    files.map(async (file) => ({
      version: Number(file.slice(0, 4)),
      name: file.slice(5, -4),
      sql: await readFile(dir + file, 'utf8'),
    })),
  );
}

/** The SHA-256 of a migration's SQL, recorded when it is applied. */
function sha256(sql: string): string {
  return createHash('sha256').update(sql).digest('hex');
}

/** A step as its file names it: `0002_commit_batch`. */
function stepName(step: Migration): string {
  return `${String(step.version).padStart(4, '0')}_${step.name}`;
}

/**
 * Applies every migration not yet applied, each in its own transaction, under a session advisory
 * lock so two processes starting at once apply each step exactly once. Safe to run repeatedly.
 * Returns the versions it applied.
 *
 * Each applied step's checksum is recorded, and a step whose file changed since it was applied is
 * refused (nothing applied): an edited migration would otherwise be skipped silently, leaving the
 * database unlike the code. Steps applied before checksums were recorded get theirs on the next run.
 */
export async function migrate(pool: pg.Pool, log: Logger, migrations?: readonly Migration[]): Promise<number[]> {
  const steps = migrations ?? (await loadMigrations());
  // Each file's checksum once: compared with the recorded ones, then recorded for new steps.
  const checksums = new Map(steps.map((step) => [step.version, sha256(step.sql)]));
  const checksum = (step: Migration) => checksums.get(step.version)!;
  const client = await checkout(pool, 'migrate: connect');
  const applied: number[] = [];
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    await client.query(`CREATE TABLE IF NOT EXISTS sentinel_schema_migrations (
      version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    await client.query('ALTER TABLE sentinel_schema_migrations ADD COLUMN IF NOT EXISTS checksum text');
    const done = new Map(
      (
        await client.query<{ version: number; checksum: string | null }>('SELECT version, checksum FROM sentinel_schema_migrations')
      ).rows.map((r) => [r.version, r.checksum]),
    );
    // Undefined: not applied yet; null: applied before checksums were recorded.
    const changed = steps.filter((step) => {
      const recorded = done.get(step.version);
      return typeof recorded === 'string' && recorded !== checksum(step);
    });
    if (changed.length > 0) {
      throw new SentinelError(
        'migration_changed',
        `migration ${changed.map(stepName).join(', ')} changed after it was applied; ` +
          'restore the applied file and add the change as a new migration',
      );
    }
    for (const step of steps) {
      const recorded = done.get(step.version);
      if (recorded === null) {
        await client.query('UPDATE sentinel_schema_migrations SET checksum = $2 WHERE version = $1', [step.version, checksum(step)]);
      }
      if (recorded !== undefined) continue;
      await client.query('BEGIN');
      try {
        await client.query(step.sql);
        await client.query('INSERT INTO sentinel_schema_migrations (version, name, checksum) VALUES ($1, $2, $3)', [
          step.version,
          step.name,
          checksum(step),
        ]);
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK');
        throw translatePgError(error, `migration ${stepName(step)}`);
      }
      log.info({ version: step.version, name: step.name }, 'Applied migration');
      applied.push(step.version);
    }
  } catch (error) {
    throw translatePgError(error, 'migrate');
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => undefined);
    client.release();
  }
  return applied;
}
