import { fileURLToPath } from 'node:url';
import { runner } from 'node-pg-migrate';
import pg from 'pg';

/**
 * Applies the versioned migrations in packages/store/migrations with node-pg-migrate, under a
 * blocking advisory lock of sched's own: masters starting together (and `sched-ctl db migrate`)
 * queue behind each other instead of failing node-pg-migrate's try-lock; whoever comes second
 * finds nothing left to do. See docs/decisions/0003-migrations.md.
 */

/** pg_advisory_lock key: "sched" + "mig" as bytes, any constant distinct from node-pg-migrate's own. */
export const MIGRATION_LOCK_KEY = 0x7363686564_6d6967n;

export const MIGRATIONS_DIR = fileURLToPath(new URL('../migrations', import.meta.url));
export const MIGRATIONS_TABLE = 'sched_migrations';

export interface MigrateOptions {
  /** Receives one line per applied migration. */
  log?: (message: string) => void;
}

/** Brings the database at `url` to the latest schema. Returns the names of the migrations applied now. */
export async function migrate(url: string, opts: MigrateOptions = {}): Promise<string[]> {
  const client = new pg.Client({ connectionString: url, application_name: 'sched-migrate' });
  await client.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY.toString()]);
    const quiet = () => {};
    const applied = await runner({
      dbClient: client,
      dir: MIGRATIONS_DIR,
      direction: 'up',
      migrationsTable: MIGRATIONS_TABLE,
      checkOrder: true,
      singleTransaction: true,
      log: quiet,
      logger: {
        debug: quiet,
        info: quiet,
        warn: (m: string) => opts.log?.(m),
        error: (m: string) => opts.log?.(m),
      },
    });
    for (const m of applied) opts.log?.(`applied migration ${m.name}`);
    return applied.map((m) => m.name);
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY.toString()]).catch(() => {});
    await client.end();
  }
}
