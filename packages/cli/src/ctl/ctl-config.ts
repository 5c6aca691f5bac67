import { ConfigError, envTable, loadConfig, parseDuration, type SchedConfig, SchedError } from '@sched/core';
import { switchFlags } from '../common/config-flags.js';
import { environmentWithStandalone, readStandaloneInfo } from './standalone-file.js';

/**
 * sched-ctl's configuration: the daemons' settings (flags > environment > `--config` file >
 * defaults) plus, when no `--config` is given, `.sched-data/standalone.json` of the current folder
 * underneath the environment. Only what a command needs is required (the secret for REST calls,
 * the database URL for `db migrate` and `db prune`), and each missing piece is named with how to set it.
 */
export interface CtlOptions {
  config?: string;
  /** `host:port` of a master to call instead of finding one in the registry. */
  master?: string;
  connectTimeout?: string;
  requestTimeout?: string;
  [flag: string]: unknown;
}

export interface CtlConfig {
  config: SchedConfig;
  /** Where the settings came from, for messages. */
  standaloneFile: boolean;
  master: string | undefined;
  connectTimeoutMs: number;
  requestTimeoutMs: number;
}

export function loadCtlConfig(opts: CtlOptions, env: NodeJS.ProcessEnv = process.env): CtlConfig {
  const flags: Record<string, unknown> = switchFlags(opts);
  for (const { env: name, path } of envTable()) {
    const attribute = name
      .replace(/^SCHED_/, '')
      .toLowerCase()
      .replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
    if (opts[attribute] !== undefined) flags[path] = opts[attribute];
  }
  const info = opts.config === undefined ? readStandaloneInfo() : undefined;
  const config = loadConfig({
    ...(opts.config === undefined ? {} : { file: opts.config }),
    env: environmentWithStandalone(env, info),
    flags,
  });
  const duration = (text: string | undefined, fallback: string, flag: string) => {
    try {
      return parseDuration(text ?? fallback, flag);
    } catch (err) {
      throw new ConfigError('invalid option', [
        { path: flag, message: err instanceof SchedError ? err.message : String(err) },
      ]);
    }
  };
  const master = opts.master ?? env.SCHED_MASTER ?? undefined;
  if (master !== undefined && !/^[^\s:/]+:\d{1,5}$/.test(master)) {
    throw new ConfigError('invalid option', [
      { path: '--master', message: `expected host:port, got ${JSON.stringify(master)}` },
    ]);
  }
  return {
    config,
    standaloneFile: info !== undefined,
    master: master || undefined,
    connectTimeoutMs: duration(opts.connectTimeout, '5s', '--connect-timeout'),
    requestTimeoutMs: duration(opts.requestTimeout, '30s', '--request-timeout'),
  };
}

export function requireSecret(c: CtlConfig): string {
  const secret = c.config.cluster.secret;
  if (!secret) {
    throw new ConfigError('sched-ctl needs the cluster secret to call the REST API', [
      {
        path: 'cluster.secret',
        message: 'not set; set SCHED_CLUSTER_SECRET, --cluster-secret or cluster.secret in --config FILE',
      },
    ]);
  }
  return secret;
}

export function requireDbUrl(c: CtlConfig, command = 'db migrate'): string {
  const url = c.config.db.url;
  if (!url) {
    throw new ConfigError(`${command} needs the PostgreSQL URL`, [
      { path: 'db.url', message: 'not set; set SCHED_DB_URL, --db-url or db.url in --config FILE' },
    ]);
  }
  return url;
}
