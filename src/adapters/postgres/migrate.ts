import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
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

/**
 * The first line of a step that runs outside a transaction, one statement at a time (what
 * `CREATE INDEX CONCURRENTLY` needs). Its statements must be safe to run again from the first: a
 * failure leaves the step unrecorded, and the next run starts it over.
 */
export const NO_TRANSACTION = '-- sentinel:no-transaction';

/**
 * The statements of a step that runs outside a transaction: split at each `;` outside a quoted
 * string, a quoted name, a dollar-quoted body (`$$ … $$`, `$fn$ … $fn$`) and a comment; comments
 * are left out.
 */
export function statementsOf(sql: string): string[] {
  const statements: string[] = [];
  let current = '';
  let i = 0;
  while (i < sql.length) {
    const rest = sql.slice(i);
    const quoted = /^'(?:[^']|'')*'|^"(?:[^"]|"")*"/.exec(rest);
    const dollar = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(rest);
    if (rest.startsWith('--')) {
      const end = rest.indexOf('\n');
      i += end === -1 ? rest.length : end;
    } else if (rest.startsWith('/*')) {
      const end = rest.indexOf('*/');
      i += end === -1 ? rest.length : end + 2;
    } else if (quoted !== null) {
      current += quoted[0];
      i += quoted[0].length;
    } else if (dollar !== null) {
      const end = rest.indexOf(dollar[0], dollar[0].length);
      const body = end === -1 ? rest : rest.slice(0, end + dollar[0].length);
      current += body;
      i += body.length;
    } else if (rest[0] === ';') {
      statements.push(current);
      current = '';
      i += 1;
    } else {
      current += rest[0];
      i += 1;
    }
  }
  statements.push(current);
  return statements.map((statement) => statement.trim()).filter((statement) => statement !== '');
}

/**
 * A statement that waits for older transactions through the lock manager while blocking no writer
 * (it gets CONCURRENT_LOCK_TIMEOUT_MS, not LOCK_TIMEOUT_MS). Group 2 names the index a
 * `CREATE INDEX CONCURRENTLY IF NOT EXISTS` builds.
 */
export const CONCURRENTLY =
  /^(?:CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY(\s+IF\s+NOT\s+EXISTS\s+([A-Za-z_][A-Za-z0-9_]*))?|DROP\s+INDEX\s+CONCURRENTLY|REINDEX\s*(?:\([^)]*\)\s*)?\w+\s+CONCURRENTLY)\b/i;

/**
 * How long a step waits for a table lock before it gives up and is tried again (Postgres
 * `lock_timeout`). A step's DDL queued behind a long transaction would otherwise hold up every
 * commit queued behind it — a sale's engines' — for as long as that transaction lasts.
 */
export const LOCK_TIMEOUT_MS = 5_000;
/**
 * The lock timeout of a concurrent index build's waits for older transactions: they block no one,
 * so they may last, but not for ever — an idle transaction left open would hold the build, and the
 * steps after it, with nothing said. Each timeout is logged and the step tried again.
 */
export const CONCURRENT_LOCK_TIMEOUT_MS = 60_000;
/** How many times a step that could not have its locks, or lost a deadlock, is tried before migrate gives up. */
export const LOCK_ATTEMPTS = 24;
/** How often a migrate waits for the advisory lock another process's migrate holds (ms). */
const MIGRATION_LOCK_POLL_MS = 500;
/** Longest a step may run (client side): an index built on a large table takes minutes, not the pool's 15 s. */
const STEP_TIMEOUT_MS = 6 * 3600_000;
/** SQLSTATEs of a step worth trying again: a lock not had within `lock_timeout`, a deadlock's victim. */
const TRY_AGAIN = new Set(['55P03', '40P01']);

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
 * Applies every migration not yet applied, each in its own transaction (or, marked
 * NO_TRANSACTION, statement by statement), under a session advisory lock so two processes
 * starting at once apply each step exactly once. Safe to run repeatedly. Returns the versions it
 * applied.
 *
 * Steps run without the pool's statement timeout (an index build on a large table outlasts it) but
 * with a lock timeout (LOCK_TIMEOUT_MS): a step that cannot have its locks — a long transaction
 * holds them — gives them up, so that the commits queued behind it go on, and is tried again, up
 * to LOCK_ATTEMPTS times.
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
    // Another process's migrate may hold the lock for minutes. Asked again and again, not waited for
    // in one statement: a statement waiting holds a snapshot, which that process's concurrent index
    // build waits for — while this one waits for its lock (a deadlock, Postgres cancels one).
    while (!(await client.query<{ got: boolean }>('SELECT pg_try_advisory_lock($1) AS got', [MIGRATION_LOCK])).rows[0]!.got) {
      await sleep(MIGRATION_LOCK_POLL_MS);
    }
    // Session settings of the migrating connection (reset before it goes back to the pool).
    await client.query(`SET statement_timeout = 0; SET lock_timeout = ${LOCK_TIMEOUT_MS}`);
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
      await applyStepUntilLocked(client, step, checksum(step), log);
      log.info({ version: step.version, name: step.name }, 'Applied migration');
      applied.push(step.version);
    }
  } catch (error) {
    throw translatePgError(error, 'migrate');
  } finally {
    await client.query('RESET statement_timeout; RESET lock_timeout').catch(() => undefined);
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => undefined);
    client.release();
  }
  return applied;
}

/** `applyStep`, tried again (up to LOCK_ATTEMPTS times, a second apart) while it cannot have its locks or loses a deadlock. */
async function applyStepUntilLocked(client: pg.PoolClient, step: Migration, checksum: string, log: Logger): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await applyStep(client, step, checksum);
    } catch (error) {
      const code = String((error as { code?: unknown }).code);
      if (!TRY_AGAIN.has(code) || attempt >= LOCK_ATTEMPTS) {
        const tail = TRY_AGAIN.has(code) ? ` (tried ${attempt} times: a lock it needs was held all along)` : '';
        throw translatePgError(
          Object.assign(error as Error, { message: `${(error as Error).message}${tail}` }),
          `migration ${stepName(step)}`,
        );
      }
      log.warn(
        { version: step.version, name: step.name, attempt, err: (error as Error).message },
        'Migration waits for a lock; trying again',
      );
      await sleep(1000);
    }
  }
}

/** Applies one step and records it: in one transaction, or (NO_TRANSACTION) one statement after another, recorded last. */
async function applyStep(client: pg.PoolClient, step: Migration, checksum: string): Promise<void> {
  // pg reads a query's own `query_timeout` before the pool's (its types do not list it).
  const run = (text: string, values?: unknown[]) =>
    client.query({ text, ...(values === undefined ? {} : { values }), query_timeout: STEP_TIMEOUT_MS } as pg.QueryConfig);
  const record = () =>
    run('INSERT INTO sentinel_schema_migrations (version, name, checksum) VALUES ($1, $2, $3)', [step.version, step.name, checksum]);
  if (step.sql.startsWith(NO_TRANSACTION)) {
    for (const statement of statementsOf(step.sql)) {
      const concurrently = CONCURRENTLY.exec(statement);
      if (concurrently === null) {
        await run(statement);
        continue;
      }
      // A concurrent index build waits for every older transaction — a verify's, a dump's — through
      // the lock manager while blocking no writer: it gets a longer lock timeout than DDL.
      await run(`SET lock_timeout = ${CONCURRENT_LOCK_TIMEOUT_MS}`);
      try {
        // A build that failed or was cut off left its index invalid, and IF NOT EXISTS would keep
        // it: dropped first (concurrently too), so that it is built anew; a valid one is kept.
        const index = concurrently[2];
        if (index !== undefined) {
          const invalid = await run('SELECT 1 FROM pg_index WHERE indexrelid = to_regclass($1) AND NOT indisvalid', [index]);
          if (invalid.rowCount !== 0) await run(`DROP INDEX CONCURRENTLY ${index}`);
        }
        await run(statement);
      } finally {
        await run(`SET lock_timeout = ${LOCK_TIMEOUT_MS}`);
      }
    }
    await record();
    return;
  }
  await client.query('BEGIN');
  try {
    await run(step.sql);
    await record();
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}
