import { createPgPool } from '../adapters/postgres/pool.js';
import { migrate } from '../adapters/postgres/migrate.js';
import type { Command } from './commands.js';

/** `sentinel migrate`: applies the schema migrations (idempotent, safe to run concurrently). */
export const migrateCommand: Command = {
  summary: 'apply database schema migrations',
  async run({ config, log, stdout }) {
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
