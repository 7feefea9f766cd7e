import { createPgPool } from '../adapters/postgres/pool.js';
import { migrate } from '../adapters/postgres/migrate.js';
import type { Command } from './commands.js';
import { parseFlags } from './flags.js';

const HELP = `Usage: sentinel migrate

Applies the database schema migrations to the Postgres at DATABASE_URL and exits: versioned,
idempotent and safe to run concurrently; refuses a migration file edited after it was applied.
Prints the migrations it applied, or that the schema is up to date. Takes no flags but --help.

Configuration comes from environment variables (DATABASE_URL, LOG_LEVEL, …): see README.md,
"Configuration", and src/config.ts.
`;

/** `sentinel migrate`: applies the schema migrations (idempotent, safe to run concurrently). */
export const migrateCommand: Command = {
  summary: 'apply database schema migrations',
  async run({ config, log, argv, stdout, stderr }) {
    // Before anything connects: `--help` or a stray argument must not apply migrations.
    const parsed = parseFlags({ argv, stdout, stderr }, { help: { type: 'boolean', short: 'h' } }, HELP);
    if ('exit' in parsed) return parsed.exit;
    const pool = createPgPool({ url: config.databaseUrl, max: 2, log, applicationName: 'sentinel-migrate' });
    try {
      const applied = await migrate(pool, log);
      stdout.write(applied.length === 0 ? 'schema is up to date\n' : `applied migrations ${applied.join(', ')}\n`);
      return 0;
    } finally {
      await pool.end();
    }
  },
};
