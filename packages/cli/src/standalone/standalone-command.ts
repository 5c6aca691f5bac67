import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  createLogger,
  type Logger,
  MIN_CLUSTER_SECRET_BYTES,
  type SchedConfig,
  SchedError,
  scrubSecretEnvironment,
} from '@sched/core';
import { MasterNode } from '@sched/master';
import { secureTree, ZkSession, zkSessionOptions } from '@sched/registry';
import { applyDefinitions, createPool, loadDefinitionPath, migrate } from '@sched/store';
import { WorkerNode } from '@sched/worker';
import type { Command } from 'commander';
import { addConfigOptions, configFromOptions } from '../common/config-flags.js';
import {
  type EmbeddedServer,
  freePort,
  portOpen,
  startEmbeddedPostgres,
  startEmbeddedZooKeeper,
} from './embedded-servers.js';

/**
 * `sched-standalone`: the zero-setup way to try sched. One process with a master and a worker,
 * plus ZooKeeper and PostgreSQL started as child processes from the system's installations,
 * with every byte of state under one folder (`.sched-data/` by default). It applies the example
 * workflows, writes `.sched-data/standalone.json` so that `sched-ctl` in the same folder finds it
 * with no settings, and stops everything (no process left behind) on Ctrl-C or SIGTERM.
 *
 * ZooKeeper credentials (docs/security.md#zookeeper): the first run generates random digest
 * credentials (`zkAuth`, kept in standalone.json, mode 0600, for later runs and for sched-ctl);
 * the master and the worker use them, so every znode is protected. A tree an earlier version left
 * open is secured at start (this process owns the embedded ZooKeeper: nothing else lives there).
 *
 * PostgreSQL (docs/security.md#standalone): a generated password (`pgPassword`, in standalone.json
 * and in its `dbUrl`) for the superuser, SCRAM for every connection, a private socket folder. A
 * data folder of an earlier version (trust authentication) is migrated at start.
 */

interface StandaloneState {
  zk: string;
  dbUrl: string;
  secret: string;
  /** ZooKeeper digest credentials `sched:<random>` (SCHED_ZK_AUTH). */
  zkAuth: string;
  /** Password of the embedded PostgreSQL's superuser `postgres` (also in `dbUrl`). */
  pgPassword: string;
  root: string;
  zkPort: number;
  pgPort: number;
}

const STATE_FILE = 'standalone.json';

function readState(dataDir: string): Partial<StandaloneState> {
  const file = join(dataDir, STATE_FILE);
  if (!existsSync(file)) return {};
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Partial<StandaloneState>;
  } catch {
    return {};
  }
}

export function standaloneCommand(program: Command): void {
  addConfigOptions(program)
    .option('--examples <dir>', 'workflow definitions to apply at start', 'deploy/examples')
    .option('--no-examples', 'apply no example workflows')
    .action(async (opts: Record<string, unknown>) => {
      // Secrets the environment may carry are read from this copy; the process's own environment
      // loses them before any child (ZooKeeper, PostgreSQL, tasks) starts (docs/security.md#secrets).
      const env = { ...process.env };
      scrubSecretEnvironment();
      const dataDir = resolve(typeof opts.dataDir === 'string' ? opts.dataDir : '.sched-data');
      mkdirSync(dataDir, { recursive: true });
      const logger = createLogger({ name: 'sched-standalone', level: (opts.logLevel as string) ?? 'warn' });
      const servers: EmbeddedServer[] = [];
      let master: MasterNode | undefined;
      let worker: WorkerNode | undefined;
      let stopping: Promise<void> | undefined;

      const stopAll = () => {
        stopping ??= (async () => {
          process.stdout.write('\nsched-standalone: stopping…\n');
          await worker?.drain(10_000).catch(() => {});
          await worker?.stop().catch(() => {});
          await master?.stop().catch(() => {});
          for (const s of [...servers].reverse()) await s.stop().catch(() => {});
          process.stdout.write('sched-standalone: stopped.\n');
        })();
        return stopping;
      };
      const onSignal = () => {
        if (stopping) process.exit(1);
        void stopAll().then(() => process.exit(0));
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);

      try {
        const t0 = Date.now();
        const previous = readState(dataDir);
        // The ports of the previous run are kept (sched-ctl and bookmarks keep working), unless
        // something else took one meanwhile: then a new one, and standalone.json says which.
        const port = async (previousPort: number | undefined) =>
          previousPort !== undefined && !(await portOpen(previousPort)) ? previousPort : freePort();
        const state: StandaloneState = {
          zkPort: await port(previous.zkPort),
          pgPort: await port(previous.pgPort),
          // A secret too short for today's rule (hand-edited) is replaced: nothing else uses it.
          secret:
            previous.secret !== undefined && Buffer.byteLength(previous.secret) >= MIN_CLUSTER_SECRET_BYTES
              ? previous.secret
              : randomBytes(32).toString('base64url'),
          zkAuth: previous.zkAuth ?? `sched:${randomBytes(32).toString('base64url')}`,
          pgPassword: previous.pgPassword ?? randomBytes(32).toString('base64url'),
          root: '/sched',
          zk: '',
          dbUrl: '',
        };
        process.stdout.write(`sched-standalone: data in ${dataDir}\n`);
        const zk = await startEmbeddedZooKeeper(join(dataDir, 'zookeeper'), state.zkPort);
        servers.push(zk);
        const pg = await startEmbeddedPostgres(join(dataDir, 'postgres'), state.pgPort, state.pgPassword);
        servers.push(pg);
        if (pg.migrated) {
          process.stdout.write(
            'sched-standalone: PostgreSQL used trust authentication (a data folder of an earlier version): it now has a generated password (SCRAM, kept in .sched-data/standalone.json) and a rewritten pg_hba.conf\n',
          );
        }
        state.zk = `127.0.0.1:${zk.port}`;
        state.dbUrl = pg.url;
        const stateFile = join(dataDir, STATE_FILE);
        writeFileSync(stateFile, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
        chmodSync(stateFile, 0o600); // the mode above applies only to a new file: it holds secrets
        process.stdout.write(
          `sched-standalone: ZooKeeper on ${state.zk}, PostgreSQL on 127.0.0.1:${pg.port}\n`,
        );

        const config = configFromOptions(
          {
            ...opts,
            zk: opts.zk ?? state.zk,
            dbUrl: opts.dbUrl ?? state.dbUrl,
            clusterSecret: opts.clusterSecret ?? state.secret,
            zkAuth: opts.zkAuth ?? state.zkAuth,
            dataDir: join(dataDir, 'node'),
            logLevel: opts.logLevel ?? 'warn',
            // One machine, one session: no reason to wait long after a crash of our own worker.
            zkSessionTimeout: opts.zkSessionTimeout ?? '6s',
          },
          env,
        );
        await migrate(state.dbUrl);
        if (opts.zk === undefined) await secureEmbeddedTree(config, logger);
        master = await MasterNode.start({ config, logger: logger.child({ role: 'master' }) });
        worker = await WorkerNode.start({ config, logger: logger.child({ role: 'worker' }) });
        process.stdout.write(`sched-standalone: master ${master.key}, worker ${worker.key}\n`);

        if (opts.examples !== false) await applyExamples(String(opts.examples), state.dbUrl, logger);

        process.stdout.write(
          [
            `sched-standalone: ready in ${((Date.now() - t0) / 1000).toFixed(1)} s. In another shell, in this folder:`,
            '  npx sched-ctl cluster status',
            '  npx sched-ctl workflow list',
            '  npx sched-ctl run list --limit 5',
            '  npx sched-ctl workflow apply -f deploy/examples/',
            'Ctrl-C stops everything.',
            '',
          ].join('\n'),
        );
        const failedOver = await Promise.race([worker.terminated.then(() => 3), master.ended]);
        process.stderr.write('sched-standalone: a node was failed over; stopping\n');
        await stopAll();
        process.exit(failedOver);
      } catch (err) {
        await stopAll();
        throw err;
      }
    });
}

/**
 * A tree an earlier run (of a version without ZooKeeper credentials) left open is secured with
 * this run's credentials, even while ephemeral znodes of that run's sessions linger (the server
 * expires them a session timeout after its restart): nothing but this process uses this ZooKeeper.
 */
async function secureEmbeddedTree(config: SchedConfig, logger: Logger): Promise<void> {
  const session = await ZkSession.connect(zkSessionOptions(config.zk));
  try {
    const r = await secureTree(session, config.zk.root, { force: true });
    if (r.changed.length > 0) {
      process.stdout.write(
        `sched-standalone: secured the ZooKeeper tree ${config.zk.root} left open by an earlier run (digest ACL on ${r.changed.length} znodes)\n`,
      );
    }
    if (r.failed.length > 0) {
      logger.warn(
        { failed: r.failed },
        `some znodes under ${config.zk.root} are protected by other credentials than those in .sched-data/standalone.json; delete .sched-data/zookeeper to start afresh`,
      );
    }
  } finally {
    await session.close();
  }
}

async function applyExamples(dir: string, dbUrl: string, logger: Logger): Promise<void> {
  const path = resolve(dir);
  if (!existsSync(path) || readdirSync(path).length === 0) {
    logger.warn({ path }, 'no example workflows to apply');
    return;
  }
  const defs = await loadDefinitionPath(path);
  const pool = createPool(dbUrl, { max: 1 });
  try {
    const results = await applyDefinitions(pool, defs);
    for (const r of results) process.stdout.write(`sched-standalone: workflow ${r.name} ${r.status}\n`);
  } catch (err) {
    throw new SchedError('STANDALONE', `applying the examples in ${path} failed: ${(err as Error).message}`, {
      cause: err,
    });
  } finally {
    await pool.end();
  }
}
