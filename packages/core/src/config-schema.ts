import { isIP } from 'node:net';
import { z } from 'zod';
import { ACCEPTED_DURATIONS, formatDuration, parseDuration } from './duration.js';
import { isValidAddress, isValidHost } from './identity.js';

/**
 * The one schema for sched's configuration, as users write it (file keys, `SCHED_*`
 * variables and flags all address the same paths, e.g. `zk.sessionTimeout`), and its
 * compilation into `SchedConfig`, the form the code reads: durations become `…Ms` numbers.
 *
 * Every setting carries its documentation (environment variable, type, default,
 * description) next to its schema, so `describeConfig()` and docs/configuration.md can
 * never drift from what is actually accepted.
 */

export interface SettingDoc {
  /** Environment variable that sets it, if any. */
  env?: string;
  /** Type as users read it: `duration`, `integer`, `string`, … */
  type: string;
  /** Default as users would write it; absent when the setting is optional with no default. */
  default?: string;
  description: string;
  /**
   * A secret that may also come from a file (docs/security.md#secrets): `<env>_FILE` names a file
   * holding the value, and under systemd `$CREDENTIALS_DIRECTORY/<credential>` (`LoadCredential=`).
   * The daemons remove `<env>` and `<env>_FILE` from their environment once the configuration is read.
   */
  credential?: string;
}

/** Documentation of each setting schema (the leaves of the section objects below). */
export const settingDocs = new Map<z.ZodType, SettingDoc>();

function withDefault<S extends z.ZodType>(
  schema: S,
  value: z.input<S> & string,
  doc: Omit<SettingDoc, 'default'>,
) {
  const result = schema.prefault(value as never);
  settingDocs.set(result, { ...doc, default: value });
  return result;
}

function optional<S extends z.ZodType>(schema: S, doc: Omit<SettingDoc, 'default'>) {
  const result = schema.optional();
  settingDocs.set(result, doc);
  return result;
}

/** A value as quoted in an error message: strings in quotes, structures by kind only. */
function shown(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return 'a list';
  if (value !== null && typeof value === 'object') return 'a mapping';
  return String(value);
}

/** A value read through `parse`, which returns the value or a message ending in "accepted: …". */
function custom<T>(parse: (value: unknown) => T | { error: string }) {
  return z.unknown().transform((value, ctx): T => {
    const out = parse(value);
    if (out !== null && typeof out === 'object' && 'error' in (out as object)) {
      ctx.addIssue({ code: 'custom', message: (out as { error: string }).error, input: value });
      return z.NEVER;
    }
    return out as T;
  });
}

const duration = (opts: { min?: number } = {}) =>
  custom<number>((value) => {
    if (typeof value !== 'string' && typeof value !== 'number') {
      return { error: `invalid duration ${shown(value)}; accepted: ${ACCEPTED_DURATIONS}` };
    }
    let ms: number;
    try {
      ms = parseDuration(value);
    } catch (err) {
      return { error: (err as Error).message };
    }
    const min = opts.min ?? 0;
    if (ms < min)
      return { error: `duration ${shown(value)} is too short; accepted: at least ${formatDuration(min)}` };
    return ms;
  });

const integer = (min: number, max: number) =>
  custom<number>((value) => {
    const n =
      typeof value === 'number'
        ? value
        : typeof value === 'string' && /^\s*-?\d+\s*$/.test(value)
          ? Number(value)
          : Number.NaN;
    if (!Number.isInteger(n) || n < min || n > max) {
      return { error: `invalid value ${shown(value)}; accepted: an integer from ${min} to ${max}` };
    }
    return n;
  });

/** A string checked by `valid`; `secret` keeps the value out of the message. */
const text = (
  accepted: string,
  valid: (s: string) => boolean = (s) => s.length > 0,
  opts: { secret?: boolean } = {},
) =>
  custom<string>((value) => {
    if (typeof value !== 'string' || !valid(value)) {
      const what = opts.secret
        ? typeof value === 'string'
          ? 'invalid value'
          : `expected a string, got ${typeof value}`
        : `invalid value ${shown(value)}`;
      return { error: `${what}; accepted: ${accepted}` };
    }
    return value;
  });

/** A list of names, as a YAML/JSON list or a comma-separated string (as environment variables carry it). */
const nameList = custom<string[]>((value) => {
  const items = typeof value === 'string' ? value.split(',').map((s) => s.trim()) : value;
  const accepted =
    'a non-empty list of names of letters, digits, "-" and "_" (in the environment: comma-separated, e.g. default,gpu)';
  if (!Array.isArray(items) || items.length === 0)
    return { error: `invalid value ${shown(value)}; accepted: ${accepted}` };
  const bad = items.find((s) => typeof s !== 'string' || !/^[A-Za-z0-9_-]+$/.test(s));
  if (bad !== undefined)
    return { error: `invalid name ${shown(bad)} in ${shown(value)}; accepted: ${accepted}` };
  return [...new Set(items as string[])];
});

const PEER_MAP_ACCEPTED =
  'registered=reachable pairs of host:port addresses (in the environment: comma-separated, e.g. 10.0.0.5:5678=203.0.113.7:15678; in a file: a mapping)';

/** Peer address rewrites: `a=b,c=d` (environment, flags) or a mapping `{a: b}` (file). */
const peerMap = custom<Record<string, string>>((value) => {
  let pairs: [unknown, unknown][];
  if (typeof value === 'string') {
    pairs = [];
    for (const item of value.split(',').map((s) => s.trim())) {
      if (item === '') continue;
      const eq = item.indexOf('=');
      if (eq < 0) return { error: `invalid entry ${shown(item)} (no "="); accepted: ${PEER_MAP_ACCEPTED}` };
      pairs.push([item.slice(0, eq).trim(), item.slice(eq + 1).trim()]);
    }
  } else if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    pairs = Object.entries(value);
  } else {
    return { error: `invalid value ${shown(value)}; accepted: ${PEER_MAP_ACCEPTED}` };
  }
  const out: Record<string, string> = {};
  for (const [from, to] of pairs) {
    for (const address of [from, to]) {
      if (typeof address !== 'string' || !isValidAddress(address))
        return { error: `invalid address ${shown(address)}; accepted: ${PEER_MAP_ACCEPTED}` };
    }
    if (Object.hasOwn(out, from as string))
      return { error: `address ${shown(from)} is mapped twice; accepted: ${PEER_MAP_ACCEPTED}` };
    out[from as string] = to as string;
  }
  return out;
});

/**
 * Networks http tasks may not reach by default (docs/tasks.md#which-networks-an-http-task-may-reach):
 * link-local IPv4 (cloud metadata services: 169.254.169.254 on AWS, GCP, Azure, OpenStack, …; AWS
 * ECS 169.254.170.2; Tencent 169.254.0.23), link-local IPv6, AWS's IPv6 metadata address and
 * Alibaba Cloud's metadata address.
 */
export const DEFAULT_HTTP_DENY_NETWORKS = [
  '169.254.0.0/16',
  'fe80::/10',
  'fd00:ec2::254/128',
  '100.100.100.200/32',
] as const;

/** `10.0.0.0/8`, `fd00::/8` or a single address (`/32`, `/128` added); null if it is neither. */
function cidrOf(entry: string): string | null {
  const slash = entry.indexOf('/');
  const address = (slash < 0 ? entry : entry.slice(0, slash)).toLowerCase();
  const family = isIP(address);
  if (family === 0) return null;
  const max = family === 4 ? 32 : 128;
  if (slash < 0) return `${address}/${max}`;
  const prefix = entry.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > max) return null;
  return `${address}/${Number(prefix)}`;
}

/**
 * A list of networks (CIDR or single addresses), as a YAML/JSON list or a comma-separated string;
 * `none` alone is the empty list; with `withDefaults`, the entry `default` stands for the
 * default list (so `default,10.0.0.0/8` adds to it).
 */
const networkList = (opts: { withDefaults: boolean }) =>
  custom<string[]>((value) => {
    const accepted = `a list of networks in CIDR notation or single addresses, e.g. 10.0.0.0/8, fd00::/8, 192.0.2.7${
      opts.withDefaults ? '; "default" stands for the default list' : ''
    }; "none" alone for no network (in the environment: comma-separated)`;
    const items =
      typeof value === 'string'
        ? value
            .split(',')
            .map((s) => s.trim())
            .filter((s) => s !== '')
        : value;
    if (!Array.isArray(items)) return { error: `invalid value ${shown(value)}; accepted: ${accepted}` };
    if (items.length === 1 && items[0] === 'none') return [];
    const out: string[] = [];
    for (const item of items) {
      if (typeof item !== 'string') return { error: `invalid network ${shown(item)}; accepted: ${accepted}` };
      if (opts.withDefaults && item === 'default') {
        out.push(...DEFAULT_HTTP_DENY_NETWORKS);
        continue;
      }
      const cidr = cidrOf(item);
      if (cidr === null) return { error: `invalid network ${shown(item)}; accepted: ${accepted}` };
      out.push(cidr);
    }
    return [...new Set(out)];
  });

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const BOOLEANS: Record<string, boolean> = {
  true: true,
  false: false,
  '1': true,
  '0': false,
  yes: true,
  no: false,
};

/** A boolean, or as environment variables and flags carry it: `true`/`false` (also `1`/`0`, `yes`/`no`). */
const boolean = custom<boolean>((value) => {
  if (typeof value === 'boolean') return value;
  const b = typeof value === 'string' ? BOOLEANS[value.trim().toLowerCase()] : undefined;
  return b ?? { error: `invalid value ${shown(value)}; accepted: true or false` };
});

const ZK_HOST_PORT = /^[A-Za-z0-9.-]+(?::\d{1,5})?$/; // the port may be left out: ZooKeeper's 2181
function isZkConnectString(s: string): boolean {
  const slash = s.indexOf('/');
  const hosts = slash < 0 ? s : s.slice(0, slash);
  const chroot = slash < 0 ? undefined : s.slice(slash);
  if (chroot !== undefined && !/^(\/[^/\s]+)+$/.test(chroot)) return false;
  return hosts.split(',').every((h) => ZK_HOST_PORT.test(h));
}

const zkSection = z.strictObject({
  connect: withDefault(
    text(
      'host:port[,host:port…] optionally followed by a chroot, e.g. 10.0.0.1:2181,10.0.0.2:2181/sched-prod',
      isZkConnectString,
    ),
    '127.0.0.1:2181',
    { env: 'SCHED_ZK', type: 'string', description: 'ZooKeeper connect string; may end in a chroot path.' },
  ),
  root: withDefault(
    text('an absolute znode path like /sched (starts with "/", no trailing "/")', (s) =>
      /^(\/[^/\s]+)+$/.test(s),
    ),
    '/sched',
    {
      env: 'SCHED_ZK_ROOT',
      type: 'znode path',
      description: 'Root znode under which sched keeps its registry.',
    },
  ),
  sessionTimeout: withDefault(duration({ min: 1 }), '10s', {
    env: 'SCHED_ZK_SESSION_TIMEOUT',
    type: 'duration',
    description: 'ZooKeeper session timeout: a node silent this long loses its session and its registration.',
  }),
  requestTimeout: withDefault(duration({ min: 1 }), '10s', {
    env: 'SCHED_ZK_REQUEST_TIMEOUT',
    type: 'duration',
    description: 'Deadline of a single ZooKeeper request.',
  }),
  auth: optional(
    text(
      'digest credentials "user:password" (a user name without ":" or spaces, then a non-empty password)',
      isZkDigestAuth,
      { secret: true },
    ),
    {
      env: 'SCHED_ZK_AUTH',
      credential: 'zk-auth',
      type: 'string (secret)',
      description:
        'ZooKeeper digest credentials, `user:password` (the password may contain `:`; use 32 random characters or more; prefer `SCHED_ZK_AUTH_FILE` or the systemd credential `zk-auth` to the variable, and either to the flag, which other local users see in the process list). Every znode sched creates gets a digest ACL for this identity only (docs/security.md#zookeeper). Daemons and `sched-ctl` refuse to use ZooKeeper without it unless `zk.insecure` is set.',
    },
  ),
  insecure: withDefault(boolean, 'false', {
    env: 'SCHED_ZK_INSECURE',
    type: 'boolean',
    description:
      'Run without ZooKeeper credentials (flag `--insecure-zk`): znodes are created open to anyone who reaches ZooKeeper, who can then register a fake worker or master or write a failover record. Daemons log a warning at start. Ignored when `zk.auth` is set.',
  }),
});

/** `user:password` for ZooKeeper's digest scheme: the user ends at the first ":"; the password may not be empty. */
function isZkDigestAuth(s: string): boolean {
  return /^[^:\s]+:.+$/s.test(s);
}

const dbSection = z.strictObject({
  url: optional(
    text('a PostgreSQL URL like postgres://user:password@host:5432/sched', isPostgresUrl, { secret: true }),
    {
      env: 'SCHED_DB_URL',
      credential: 'db-url',
      type: 'URL (secret password)',
      description:
        'PostgreSQL connection URL. Masters and sched-ctl only; workers never use the database. May also come from `SCHED_DB_URL_FILE` or the systemd credential `db-url`.',
    },
  ),
  poolSize: withDefault(integer(1, 1000), '10', {
    env: 'SCHED_DB_POOL_SIZE',
    type: 'integer',
    description: 'Maximum number of PostgreSQL connections per process.',
  }),
  connectTimeout: withDefault(duration(), '10s', {
    env: 'SCHED_DB_CONNECT_TIMEOUT',
    type: 'duration',
    description:
      'Deadline for opening a PostgreSQL connection (TCP connect and login); `0` = none. Waiting for a free pooled connection is not limited by it.',
  }),
  queryTimeout: withDefault(duration(), '75s', {
    env: 'SCHED_DB_QUERY_TIMEOUT',
    type: 'duration',
    description:
      'Client-side deadline for the answer to one query: a server that stops answering (a black-holed network, a frozen host) fails the query with `DB_QUERY_TIMEOUT` and the connection is dropped; `0` = none. Keep it above `db.statementTimeout`, so the server cancels a slow statement first.',
  }),
  statementTimeout: withDefault(duration(), '60s', {
    env: 'SCHED_DB_STATEMENT_TIMEOUT',
    type: 'duration',
    description:
      "PostgreSQL's `statement_timeout` for sched's connections: the server cancels a statement running (or waiting for a lock) longer; `0` = none.",
  }),
  lockTimeout: withDefault(duration(), '30s', {
    env: 'SCHED_DB_LOCK_TIMEOUT',
    type: 'duration',
    description:
      "PostgreSQL's `lock_timeout`: the server cancels a statement that waits longer for a lock; `0` = none. Keep it above `db.idleInTransactionTimeout`, so a new leader outwaits a frozen one's transaction (docs/design.md#fencing).",
  }),
  idleInTransactionTimeout: withDefault(duration(), '15s', {
    env: 'SCHED_DB_IDLE_IN_TRANSACTION_TIMEOUT',
    type: 'duration',
    description:
      "PostgreSQL's `idle_in_transaction_session_timeout`: the server ends the session of a process that sits inside a transaction this long (frozen, or cut off from the database) and releases its locks; `0` = none.",
  }),
  keepAlive: withDefault(duration(), '10s', {
    env: 'SCHED_DB_KEEPALIVE',
    type: 'duration',
    description:
      'TCP keepalive on PostgreSQL connections: idle time before the first probe, so a connection to a vanished server is noticed; `0` = no keepalive.',
  }),
  stepOutAfter: withDefault(duration(), '30s', {
    env: 'SCHED_DB_STEP_OUT_AFTER',
    type: 'duration',
    description:
      'A master that cannot reach PostgreSQL for this long while another live master can steps out of the cluster (ends its ZooKeeper session and exits with code 4) so the others take over its schedules and runs; `0` = never (docs/operations.md#degraded-operation).',
  }),
  retention: withDefault(duration(), '30d', {
    env: 'SCHED_DB_RETENTION',
    type: 'duration',
    description:
      'How long ended runs (succeeded, failed, cancelled) and their task attempts are kept: the leader deletes older ones in small batches, oldest first; `0` = keep forever. Also the default of `sched-ctl db prune --older-than` (docs/operations.md#retention).',
  }),
});

function isPostgresUrl(s: string): boolean {
  try {
    const url = new URL(s);
    return (url.protocol === 'postgres:' || url.protocol === 'postgresql:') && url.hostname !== '';
  } catch {
    return false;
  }
}

/** The shortest cluster secret accepted, in bytes (UTF-8): docs/security.md#secrets. */
export const MIN_CLUSTER_SECRET_BYTES = 32;

const clusterSection = z.strictObject({
  secret: optional(
    custom<string>((value) => {
      const accepted = `a random string of at least ${MIN_CLUSTER_SECRET_BYTES} bytes, e.g. the output of \`openssl rand -base64 32\``;
      if (typeof value !== 'string' || value === '')
        return { error: `expected a non-empty string; accepted: ${accepted}` };
      const bytes = Buffer.byteLength(value, 'utf8');
      if (bytes < MIN_CLUSTER_SECRET_BYTES)
        return { error: `too short (${bytes} bytes); accepted: ${accepted}` };
      return value;
    }),
    {
      env: 'SCHED_CLUSTER_SECRET',
      credential: 'cluster-secret',
      type: 'string (secret)',
      description: `Shared secret that authenticates master↔worker traffic and API calls; at least ${MIN_CLUSTER_SECRET_BYTES} bytes (a shorter one is refused). Prefer \`SCHED_CLUSTER_SECRET_FILE\` or the systemd credential \`cluster-secret\` to the variable (docs/security.md#secrets).`,
    },
  ),
});

const nodeSection = z.strictObject({
  host: withDefault(text('an IPv4 address or a hostname', isValidHost), '127.0.0.1', {
    env: 'SCHED_HOST',
    type: 'host',
    description: 'Host this node advertises to the cluster (part of its identity `host:port_startTime`).',
  }),
  port: withDefault(integer(0, 65535), '0', {
    env: 'SCHED_PORT',
    type: 'integer',
    description: 'Port this node listens on; `0` picks a free port.',
  }),
  advertisePort: optional(integer(1, 65535), {
    env: 'SCHED_ADVERTISE_PORT',
    type: 'integer',
    description:
      'Port this node registers for others to reach it (and so part of its identity), when a forwarder (NAT, a port mapping, a proxy) sends that port to `node.port`; default: the port it listens on.',
  }),
  peerMap: optional(peerMap, {
    env: 'SCHED_PEER_MAP',
    type: 'list of `registered=reachable` address pairs',
    description:
      'Rewrites applied before connecting to another node: the `host:port` a master or worker registered → the `host:port` to dial instead (peers behind NAT or a port mapping; sched-ctl uses it too). Unlisted addresses are dialled as registered.',
  }),
  dataDir: withDefault(text('a non-empty path'), '.sched-data', {
    env: 'SCHED_DATA_DIR',
    type: 'path',
    description:
      'Folder for task logs and the report spool (relative paths are taken from the working directory).',
  }),
});

const heartbeatSection = z.strictObject({
  interval: withDefault(duration({ min: 1 }), '5s', {
    env: 'SCHED_HEARTBEAT_INTERVAL',
    type: 'duration',
    description: 'How often a node refreshes its heartbeat znode.',
  }),
});

const failoverSection = z.strictObject({
  delay: withDefault(duration(), '5s', {
    env: 'SCHED_FAILOVER_DELAY',
    type: 'duration',
    description: "Wait after a node's znode disappears before its work is failed over.",
  }),
  retention: withDefault(duration(), '7d', {
    env: 'SCHED_FAILOVER_RETENTION',
    type: 'duration',
    description: 'How long failover records are kept before the leader purges them.',
  }),
});

const workerSection = z.strictObject({
  groups: withDefault(nameList, 'default', {
    env: 'SCHED_WORKER_GROUPS',
    type: 'list of names',
    description: 'Worker groups this worker serves (comma-separated in the environment).',
  }),
  capacity: withDefault(integer(1, 10_000), '8', {
    env: 'SCHED_WORKER_CAPACITY',
    type: 'integer',
    description:
      'Process slots: shell and script tasks this worker runs at once. A slot is held only while the task runs; noop tasks take none (docs/tasks.md#capacity).',
  }),
  httpCapacity: withDefault(integer(1, 100_000), '256', {
    env: 'SCHED_WORKER_HTTP_CAPACITY',
    type: 'integer',
    description: 'http tasks this worker runs at once (they hold a connection, not a process).',
  }),
  backlog: withDefault(integer(0, 100_000), '1000', {
    env: 'SCHED_WORKER_BACKLOG',
    type: 'integer',
    description:
      'Accepted tasks that may wait for a free slot on this worker; beyond it the worker answers busy and the master routes elsewhere or waits. 0 = never queue.',
  }),
  weight: withDefault(integer(1, 1000), '1', {
    env: 'SCHED_WORKER_WEIGHT',
    type: 'integer',
    description: 'Weight of this worker in weighted routing.',
  }),
  killGrace: withDefault(duration(), '5s', {
    env: 'SCHED_KILL_GRACE',
    type: 'duration',
    description: 'Time between SIGTERM and SIGKILL when a task is stopped.',
  }),
  logRetention: withDefault(duration(), '7d', {
    env: 'SCHED_WORKER_LOG_RETENTION',
    type: 'duration',
    description: "How long finished attempts' log files are kept on the worker (purged hourly).",
  }),
  logMaxBytes: withDefault(integer(1024, 1024 * 1024 * 1024), String(64 * 1024 * 1024), {
    env: 'SCHED_WORKER_LOG_MAX_BYTES',
    type: 'integer',
    description:
      "Cap of one attempt's log file in bytes; output beyond it is dropped (the tail is still kept).",
  }),
  httpAllowNetworks: optional(networkList({ withDefaults: false }), {
    env: 'SCHED_WORKER_HTTP_ALLOW',
    type: 'list of networks (CIDR)',
    description:
      'When set, http tasks may reach only addresses in these networks (every address a host name resolves to, and every redirect, is checked before connecting); `none` = no address. Unset: any address not denied. `worker.httpDenyNetworks` wins over it (docs/tasks.md#which-networks-an-http-task-may-reach).',
  }),
  httpDenyNetworks: withDefault(networkList({ withDefaults: true }), DEFAULT_HTTP_DENY_NETWORKS.join(','), {
    env: 'SCHED_WORKER_HTTP_DENY',
    type: 'list of networks (CIDR)',
    description:
      'http tasks may not reach addresses in these networks, directly, through a host name or through a redirect: the attempt fails before anything is dialled. The default denies link-local addresses and cloud metadata services; a value replaces it (`default` in the list stands for it, e.g. `default,10.0.0.0/8`; `none` denies nothing).',
  }),
});

const logSection = z.strictObject({
  level: withDefault(
    text(LOG_LEVELS.join(', '), (s) => (LOG_LEVELS as readonly string[]).includes(s)),
    'info',
    {
      env: 'SCHED_LOG_LEVEL',
      type: `one of ${LOG_LEVELS.join(', ')}`,
      description: 'Least severe level written; JSON lines on a pipe, human-readable lines on a terminal.',
    },
  ),
});

/** The sections of the configuration, in documentation order. */
export const configSections = {
  zk: zkSection,
  db: dbSection,
  cluster: clusterSection,
  node: nodeSection,
  heartbeat: heartbeatSection,
  failover: failoverSection,
  worker: workerSection,
  log: logSection,
} as const;

/** The configuration as the code reads it: validated, defaults applied, durations in ms. */
export interface SchedConfig {
  zk: {
    connect: string;
    root: string;
    sessionTimeoutMs: number;
    requestTimeoutMs: number;
    /** Digest credentials `user:password`. */
    auth?: string;
    /** Present (true) only when set: run without credentials, knowingly (docs/security.md#zookeeper). */
    insecure?: true;
  };
  db: {
    url?: string;
    poolSize: number;
    connectTimeoutMs: number;
    queryTimeoutMs: number;
    statementTimeoutMs: number;
    lockTimeoutMs: number;
    idleInTransactionTimeoutMs: number;
    keepAliveMs: number;
    /** A master cut from PostgreSQL while another master is not steps out after this; 0 = never. */
    stepOutAfterMs: number;
    /** Ended runs older than this are deleted by the leader; 0 = keep forever. */
    retentionMs: number;
  };
  cluster: { secret?: string };
  node: {
    host: string;
    port: number;
    /** Registered port when it differs from the listen port (a forwarder in between). */
    advertisePort?: number;
    dataDir: string;
    /** Registered address → address to dial (empty when unset). */
    peerMap: Record<string, string>;
  };
  heartbeat: { intervalMs: number };
  failover: { delayMs: number; retentionMs: number };
  worker: {
    groups: string[];
    capacity: number;
    httpCapacity: number;
    backlog: number;
    weight: number;
    killGraceMs: number;
    logRetentionMs: number;
    logMaxBytes: number;
    /** Networks (CIDR) http tasks may reach; absent = any that is not denied. */
    httpAllowNetworks?: string[];
    /** Networks (CIDR) http tasks may not reach. */
    httpDenyNetworks: string[];
  };
  log: { level: LogLevel };
}

/** The user-facing schema compiled into `SchedConfig`. Unknown keys anywhere are errors. */
export const configSchema = z
  .strictObject({
    zk: zkSection.prefault({}),
    db: dbSection.prefault({}),
    cluster: clusterSection.prefault({}),
    node: nodeSection.prefault({}),
    heartbeat: heartbeatSection.prefault({}),
    failover: failoverSection.prefault({}),
    worker: workerSection.prefault({}),
    log: logSection.prefault({}),
  })
  .transform(
    ({ zk, db, cluster, node, heartbeat, failover, worker, log }): SchedConfig => ({
      zk: {
        connect: zk.connect,
        root: zk.root,
        sessionTimeoutMs: zk.sessionTimeout,
        requestTimeoutMs: zk.requestTimeout,
        ...(zk.auth === undefined ? {} : { auth: zk.auth }),
        ...(zk.insecure ? { insecure: true as const } : {}),
      },
      db: {
        ...(db.url === undefined ? {} : { url: db.url }),
        poolSize: db.poolSize,
        connectTimeoutMs: db.connectTimeout,
        queryTimeoutMs: db.queryTimeout,
        statementTimeoutMs: db.statementTimeout,
        lockTimeoutMs: db.lockTimeout,
        idleInTransactionTimeoutMs: db.idleInTransactionTimeout,
        keepAliveMs: db.keepAlive,
        stepOutAfterMs: db.stepOutAfter,
        retentionMs: db.retention,
      },
      cluster: cluster.secret === undefined ? {} : { secret: cluster.secret },
      node: {
        host: node.host,
        port: node.port,
        ...(node.advertisePort === undefined ? {} : { advertisePort: node.advertisePort }),
        dataDir: node.dataDir,
        peerMap: node.peerMap ?? {},
      },
      heartbeat: { intervalMs: heartbeat.interval },
      failover: { delayMs: failover.delay, retentionMs: failover.retention },
      worker: {
        groups: worker.groups,
        capacity: worker.capacity,
        httpCapacity: worker.httpCapacity,
        backlog: worker.backlog,
        weight: worker.weight,
        killGraceMs: worker.killGrace,
        logRetentionMs: worker.logRetention,
        logMaxBytes: worker.logMaxBytes,
        ...(worker.httpAllowNetworks === undefined ? {} : { httpAllowNetworks: worker.httpAllowNetworks }),
        httpDenyNetworks: worker.httpDenyNetworks,
      },
      log: { level: log.level as LogLevel },
    }),
  );

/** One documented setting, addressed by its dotted path. */
export interface ConfigSetting {
  path: string;
  section: string;
  key: string;
  schema: z.ZodType;
  doc: SettingDoc;
}

/** Every setting, in documentation order. */
export function configSettings(): ConfigSetting[] {
  const out: ConfigSetting[] = [];
  for (const [section, object] of Object.entries(configSections)) {
    for (const [key, schema] of Object.entries(object.shape as Record<string, z.ZodType>)) {
      const doc = settingDocs.get(schema);
      if (!doc) throw new Error(`config setting ${section}.${key} has no documentation`);
      out.push({ path: `${section}.${key}`, section, key, schema, doc });
    }
  }
  return out;
}
