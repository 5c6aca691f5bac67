import { describeConfig, envTable, loadConfig, type SchedConfig } from '@sched/core';
import { type Command, Option } from 'commander';

/**
 * Every setting that has a `SCHED_*` variable also has a flag, derived from the variable's name
 * (`SCHED_ZK_SESSION_TIMEOUT` → `--zk-session-timeout`), so the three sources always agree:
 * flags over environment over file (`--config`) over defaults (docs/configuration.md). One
 * exception: `zk.insecure` (`SCHED_ZK_INSECURE`) is the value-less `--insecure-zk`, so that
 * running without ZooKeeper credentials reads as what it is (docs/security.md#zookeeper).
 */

/** Settings whose flag is not derived from their variable: variable → the flag that sets them to true. */
const SWITCHES: Record<string, { flag: string; attribute: string; description: string }> = {
  SCHED_ZK_INSECURE: {
    flag: 'insecure-zk',
    attribute: 'insecureZk',
    description:
      'use ZooKeeper without credentials (SCHED_ZK_INSECURE=true): znodes are created open to anyone who reaches ZooKeeper; a warning is logged. Prefer --zk-auth / SCHED_ZK_AUTH',
  },
};

/** The switches set in parsed options, as dotted setting paths (`{ 'zk.insecure': true }`). */
export function switchFlags(opts: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const { env, path } of envTable()) {
    const sw = SWITCHES[env];
    if (sw && opts[sw.attribute] === true) out[path] = true;
  }
  return out;
}
interface FlagSpec {
  flag: string;
  /** commander's camelCase attribute name. */
  attribute: string;
  path: string;
  env: string;
  description: string;
}

function flagSpecs(): FlagSpec[] {
  const described = new Map(describeConfig().map((row) => [row.path, row]));
  return envTable()
    .filter(({ env }) => !(env in SWITCHES))
    .map(({ env, path }) => {
      const flag = env
        .replace(/^SCHED_/, '')
        .toLowerCase()
        .replace(/_/g, '-');
      const attribute = flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
      const row = described.get(path);
      const description = `${row?.description ?? path} (${env}${row?.default ? `; default ${row.default}` : ''})`;
      return { flag, attribute, path, env, description };
    });
}

/** Adds `--config FILE` and one flag per setting to a command. */
export function addConfigOptions(cmd: Command): Command {
  cmd.option('-c, --config <file>', 'configuration file (YAML or JSON); see docs/configuration.md');
  for (const spec of flagSpecs()) {
    cmd.addOption(new Option(`--${spec.flag} <value>`, spec.description));
  }
  for (const sw of Object.values(SWITCHES)) cmd.addOption(new Option(`--${sw.flag}`, sw.description));
  return cmd;
}

/**
 * Loads the configuration from the command's flags, the environment (`env`, default
 * `process.env`; secrets also from `SCHED_*_FILE` files and systemd credentials) and `--config`.
 * Throws ConfigError.
 */
export function configFromOptions(
  opts: Record<string, unknown>,
  env: Record<string, string | undefined> = process.env,
): SchedConfig {
  const flags: Record<string, unknown> = switchFlags(opts);
  for (const spec of flagSpecs()) {
    const v = opts[spec.attribute];
    if (v !== undefined) flags[spec.path] = v;
  }
  const file = typeof opts.config === 'string' ? opts.config : undefined;
  return loadConfig({ ...(file === undefined ? {} : { file }), env, flags });
}
