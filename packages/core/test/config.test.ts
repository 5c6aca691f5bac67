import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, formatIssues, loadConfig } from '@sched/core';
import { afterAll, describe, expect, test } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'sched-core-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function file(text: string, ext = 'yaml'): string {
  const path = join(dir, `config-${++n}.${ext}`);
  writeFileSync(path, text);
  return path;
}

function configError(load: () => unknown): ConfigError {
  try {
    load();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError, but the configuration loaded');
}

const ACCEPTED_DURATIONS = 'accepted: a number of milliseconds or a string like 500ms, 10s, 5m, 1h, 7d';

describe('loadConfig', () => {
  test('defaults alone make a complete configuration', () => {
    expect(loadConfig({ env: {} })).toEqual({
      zk: { connect: '127.0.0.1:2181', root: '/sched', sessionTimeoutMs: 10_000, requestTimeoutMs: 10_000 },
      db: {
        poolSize: 10,
        connectTimeoutMs: 10_000,
        queryTimeoutMs: 75_000,
        statementTimeoutMs: 60_000,
        lockTimeoutMs: 30_000,
        idleInTransactionTimeoutMs: 15_000,
        keepAliveMs: 10_000,
        stepOutAfterMs: 30_000,
        retentionMs: 2_592_000_000,
      },
      cluster: {},
      node: { host: '127.0.0.1', port: 0, dataDir: '.sched-data', peerMap: {} },
      heartbeat: { intervalMs: 5_000 },
      failover: { delayMs: 5_000, retentionMs: 7 * 86_400_000 },
      worker: {
        groups: ['default'],
        capacity: 8,
        httpCapacity: 256,
        backlog: 1000,
        weight: 1,
        killGraceMs: 5_000,
        logRetentionMs: 604_800_000,
        logMaxBytes: 67_108_864,
        httpDenyNetworks: ['169.254.0.0/16', 'fe80::/10', 'fd00:ec2::254/128', '100.100.100.200/32'],
      },
      log: { level: 'info' },
    });
  });

  test('a correct YAML file compiles its durations to milliseconds', () => {
    const config = loadConfig({
      env: {},
      file: file(`
zk:
  connect: 10.0.0.1:2181,10.0.0.2:2181/sched-prod
  root: /jobs
  sessionTimeout: 1m30s
  requestTimeout: 2500ms
  auth: ops:pw
db:
  url: postgres://sched:pw@10.0.0.9:5432/sched
  poolSize: 4
cluster:
  secret: s3cret-0123456789abcdef0123456789abcdef
node:
  host: worker-1.example
  port: 7070
  advertisePort: 17070
  dataDir: /var/lib/sched
  peerMap: { '10.0.0.5:5678': '203.0.113.7:15678' }
heartbeat:
  interval: 1.5s
failover:
  delay: 12s
  retention: 2d
worker:
  groups: [default, gpu]
  capacity: 2
  weight: 3
  killGrace: 250
log:
  level: debug
`),
    });
    expect(config).toEqual({
      zk: {
        connect: '10.0.0.1:2181,10.0.0.2:2181/sched-prod',
        root: '/jobs',
        sessionTimeoutMs: 90_000,
        requestTimeoutMs: 2_500,
        auth: 'ops:pw',
      },
      db: {
        url: 'postgres://sched:pw@10.0.0.9:5432/sched',
        poolSize: 4,
        connectTimeoutMs: 10_000,
        queryTimeoutMs: 75_000,
        statementTimeoutMs: 60_000,
        lockTimeoutMs: 30_000,
        idleInTransactionTimeoutMs: 15_000,
        keepAliveMs: 10_000,
        stepOutAfterMs: 30_000,
        retentionMs: 2_592_000_000,
      },
      cluster: { secret: 's3cret-0123456789abcdef0123456789abcdef' },
      node: {
        host: 'worker-1.example',
        port: 7070,
        advertisePort: 17070,
        dataDir: '/var/lib/sched',
        peerMap: { '10.0.0.5:5678': '203.0.113.7:15678' },
      },
      heartbeat: { intervalMs: 1_500 },
      failover: { delayMs: 12_000, retentionMs: 2 * 86_400_000 },
      worker: {
        groups: ['default', 'gpu'],
        capacity: 2,
        httpCapacity: 256,
        backlog: 1000,
        weight: 3,
        killGraceMs: 250,
        logRetentionMs: 604_800_000,
        logMaxBytes: 67_108_864,
        httpDenyNetworks: ['169.254.0.0/16', 'fe80::/10', 'fd00:ec2::254/128', '100.100.100.200/32'],
      },
      log: { level: 'debug' },
    });
  });

  test('JSON files are read too', () => {
    const config = loadConfig({
      env: {},
      file: file('{"zk": {"sessionTimeout": "3s"}, "node": {"port": 9}}', 'json'),
    });
    expect(config.zk.sessionTimeoutMs).toBe(3_000);
    expect(config.node.port).toBe(9);
  });

  test('an empty file (or one with empty sections) means all defaults', () => {
    expect(loadConfig({ env: {}, file: file('# nothing set yet\n') })).toEqual(loadConfig({ env: {} }));
    expect(loadConfig({ env: {}, file: file('zk:\n#  connect: x\nnode:\n') })).toEqual(
      loadConfig({ env: {} }),
    );
  });

  test('precedence: flag over environment over file over default', () => {
    const path = file(`
zk: { sessionTimeout: 20s, connect: file-zk:2181, root: /from-file }
node: { port: 1111 }
`);
    const env = {
      SCHED_ZK_SESSION_TIMEOUT: '30s',
      SCHED_ZK: 'env-zk:2181',
      SCHED_DATA_DIR: '/env/data',
    };
    const flags = { 'zk.sessionTimeout': '40s', node: { dataDir: '/flag/data' } };

    const config = loadConfig({ file: path, env, flags });
    expect(config.zk.sessionTimeoutMs).toBe(40_000); // flag beats env and file
    expect(config.zk.connect).toBe('env-zk:2181'); // env beats file
    expect(config.zk.root).toBe('/from-file'); // file beats default
    expect(config.node.port).toBe(1111); // file beats default
    expect(config.node.dataDir).toBe('/flag/data'); // nested flag beats env
    expect(config.node.host).toBe('127.0.0.1'); // default

    // And each layer, taken away, uncovers the one below.
    expect(loadConfig({ file: path, env }).zk.sessionTimeoutMs).toBe(30_000);
    expect(loadConfig({ file: path, env: {} }).zk.sessionTimeoutMs).toBe(20_000);
    expect(loadConfig({ env: {} }).zk.sessionTimeoutMs).toBe(10_000);
  });

  test('every environment variable reaches its setting; empty ones count as unset; others are ignored', () => {
    const config = loadConfig({
      env: {
        SCHED_ZK: 'zk1:2181,zk2:2181/chroot',
        SCHED_ZK_ROOT: '/other',
        SCHED_ZK_SESSION_TIMEOUT: '6s',
        SCHED_ZK_REQUEST_TIMEOUT: '7000',
        SCHED_ZK_AUTH: 'user:password',
        SCHED_DB_URL: 'postgresql://u:p@127.0.0.1:5433/db',
        SCHED_DB_POOL_SIZE: '3',
        SCHED_DB_STEP_OUT_AFTER: '45s',
        SCHED_DB_RETENTION: '0',
        SCHED_CLUSTER_SECRET: 'k-0123456789abcdef0123456789abcdef',
        SCHED_HOST: '10.1.2.3',
        SCHED_PORT: '8080',
        SCHED_ADVERTISE_PORT: '18080',
        SCHED_PEER_MAP: '10.0.0.5:5678=127.0.0.1:9001, w1.example:80=127.0.0.1:9002',
        SCHED_DATA_DIR: 'data',
        SCHED_HEARTBEAT_INTERVAL: '2s',
        SCHED_FAILOVER_DELAY: '9s',
        SCHED_FAILOVER_RETENTION: '1h',
        SCHED_WORKER_GROUPS: 'default, gpu ,etl',
        SCHED_WORKER_CAPACITY: '16',
        SCHED_WORKER_HTTP_CAPACITY: '64',
        SCHED_WORKER_BACKLOG: '0',
        SCHED_WORKER_WEIGHT: '5',
        SCHED_KILL_GRACE: '1s',
        SCHED_WORKER_LOG_RETENTION: '2d',
        SCHED_WORKER_LOG_MAX_BYTES: '1048576',
        SCHED_WORKER_HTTP_ALLOW: '10.0.0.0/8, 192.0.2.7,FD00::/8',
        SCHED_WORKER_HTTP_DENY: 'default,10.9.0.0/16',
        SCHED_LOG_LEVEL: 'warn',
        SCHED_RUN_ID: 'not a config variable',
        SCHED_LOG_LEVELZ: 'ignored',
      },
    });
    expect(config).toEqual({
      zk: {
        connect: 'zk1:2181,zk2:2181/chroot',
        root: '/other',
        sessionTimeoutMs: 6_000,
        requestTimeoutMs: 7_000,
        auth: 'user:password',
      },
      db: {
        url: 'postgresql://u:p@127.0.0.1:5433/db',
        poolSize: 3,
        connectTimeoutMs: 10_000,
        queryTimeoutMs: 75_000,
        statementTimeoutMs: 60_000,
        lockTimeoutMs: 30_000,
        idleInTransactionTimeoutMs: 15_000,
        keepAliveMs: 10_000,
        stepOutAfterMs: 45_000,
        retentionMs: 0,
      },
      cluster: { secret: 'k-0123456789abcdef0123456789abcdef' },
      node: {
        host: '10.1.2.3',
        port: 8080,
        advertisePort: 18080,
        dataDir: 'data',
        peerMap: { '10.0.0.5:5678': '127.0.0.1:9001', 'w1.example:80': '127.0.0.1:9002' },
      },
      heartbeat: { intervalMs: 2_000 },
      failover: { delayMs: 9_000, retentionMs: 3_600_000 },
      worker: {
        groups: ['default', 'gpu', 'etl'],
        capacity: 16,
        httpCapacity: 64,
        backlog: 0,
        weight: 5,
        killGraceMs: 1_000,
        logRetentionMs: 172_800_000,
        logMaxBytes: 1_048_576,
        httpAllowNetworks: ['10.0.0.0/8', '192.0.2.7/32', 'fd00::/8'],
        httpDenyNetworks: [
          '169.254.0.0/16',
          'fe80::/10',
          'fd00:ec2::254/128',
          '100.100.100.200/32',
          '10.9.0.0/16',
        ],
      },
      log: { level: 'warn' },
    });
    expect(loadConfig({ env: { SCHED_ZK: '', SCHED_PORT: '' } })).toEqual(loadConfig({ env: {} }));
  });

  test('a file with three mistakes produces ONE ConfigError listing all three with their paths', () => {
    const path = file(`
zk:
  connect: 127.0.0.1:2181
  sessionTimeout: ten seconds
node:
  port: 99999
worker:
  capacty: 4
`);
    const err = configError(() => loadConfig({ file: path, env: {} }));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.retriable).toBe(false);
    expect(err.issues).toEqual([
      { path: 'zk.sessionTimeout', message: `invalid duration "ten seconds"; ${ACCEPTED_DURATIONS}` },
      { path: 'node.port', message: 'invalid value 99999; accepted: an integer from 0 to 65535' },
      {
        path: 'worker.capacty',
        message:
          'unknown key; accepted here: groups, capacity, httpCapacity, backlog, weight, killGrace, logRetention, logMaxBytes, httpAllowNetworks, httpDenyNetworks',
      },
    ]);
    expect(err.message.split('\n')).toEqual([
      `invalid configuration (config file ${path}): 3 problems`,
      `  - zk.sessionTimeout: invalid duration "ten seconds"; ${ACCEPTED_DURATIONS}`,
      '  - node.port: invalid value 99999; accepted: an integer from 0 to 65535',
      '  - worker.capacty: unknown key; accepted here: groups, capacity, httpCapacity, backlog, weight, killGrace, logRetention, logMaxBytes, httpAllowNetworks, httpDenyNetworks',
    ]);
  });

  test('problems from every source are reported together; environment ones name the variable', () => {
    const err = configError(() =>
      loadConfig({
        file: file('zk:\n  root: sched\n'),
        env: { SCHED_ZK_SESSION_TIMEOUT: 'ten', SCHED_WORKER_GROUPS: 'default,bad group' },
        flags: { 'node.port': 'eighty' },
      }),
    );
    expect(formatIssues(err.issues).split('\n')).toEqual([
      'zk.root: invalid value "sched"; accepted: an absolute znode path like /sched (starts with "/", no trailing "/")',
      `SCHED_ZK_SESSION_TIMEOUT (zk.sessionTimeout): invalid duration "ten"; ${ACCEPTED_DURATIONS}`,
      'node.port: invalid value "eighty"; accepted: an integer from 0 to 65535',
      'SCHED_WORKER_GROUPS (worker.groups): invalid name "bad group" in "default,bad group"; accepted: a non-empty list of names of letters, digits, "-" and "_" (in the environment: comma-separated, e.g. default,gpu)',
    ]);
    expect(err.issues[1]).toMatchObject({ path: 'zk.sessionTimeout', source: 'SCHED_ZK_SESSION_TIMEOUT' });
  });

  test('a bad peer map or advertised port names the entry and what is accepted; nothing else is taken', () => {
    const accepted =
      'accepted: registered=reachable pairs of host:port addresses (in the environment: comma-separated, e.g. 10.0.0.5:5678=203.0.113.7:15678; in a file: a mapping)';
    const cases: [Record<string, string>, string][] = [
      [
        { SCHED_PEER_MAP: '10.0.0.5:5678' },
        `SCHED_PEER_MAP (node.peerMap): invalid entry "10.0.0.5:5678" (no "="); ${accepted}`,
      ],
      [
        { SCHED_PEER_MAP: '10.0.0.5:5678=proxy' },
        `SCHED_PEER_MAP (node.peerMap): invalid address "proxy"; ${accepted}`,
      ],
      [
        { SCHED_PEER_MAP: 'a:1=b:2,a:1=c:3' },
        `SCHED_PEER_MAP (node.peerMap): address "a:1" is mapped twice; ${accepted}`,
      ],
      [
        { SCHED_PEER_MAP: '10.0.0.5:70000=127.0.0.1:1' },
        `SCHED_PEER_MAP (node.peerMap): invalid address "10.0.0.5:70000"; ${accepted}`,
      ],
      [
        { SCHED_ADVERTISE_PORT: '0' },
        'SCHED_ADVERTISE_PORT (node.advertisePort): invalid value "0"; accepted: an integer from 1 to 65535',
      ],
    ];
    for (const [env, message] of cases) {
      expect(formatIssues(configError(() => loadConfig({ env })).issues)).toBe(message);
    }
    const listInFile = configError(() => loadConfig({ file: file('node:\n  peerMap: [a]\n'), env: {} }));
    expect(formatIssues(listInFile.issues)).toBe(`node.peerMap: invalid value a list; ${accepted}`);
  });

  test('http networks: CIDR lists; "default" stands for the default deny list, "none" for no network', () => {
    const worker = (env: Record<string, string>, text?: string) =>
      loadConfig({ env, ...(text === undefined ? {} : { file: file(text) }) }).worker;
    expect(worker({}).httpAllowNetworks).toBeUndefined();
    expect(worker({ SCHED_WORKER_HTTP_DENY: 'none', SCHED_WORKER_HTTP_ALLOW: 'none' })).toMatchObject({
      httpAllowNetworks: [],
      httpDenyNetworks: [],
    });
    expect(worker({ SCHED_WORKER_HTTP_DENY: '127.0.0.0/8' }).httpDenyNetworks).toEqual(['127.0.0.0/8']);
    expect(
      worker({}, 'worker:\n  httpDenyNetworks: [default, 127.0.0.1, "::1"]\n  httpAllowNetworks: []\n'),
    ).toMatchObject({
      httpAllowNetworks: [],
      httpDenyNetworks: [
        '169.254.0.0/16',
        'fe80::/10',
        'fd00:ec2::254/128',
        '100.100.100.200/32',
        '127.0.0.1/32',
        '::1/128',
      ],
    });
    const accepted =
      'accepted: a list of networks in CIDR notation or single addresses, e.g. 10.0.0.0/8, fd00::/8, 192.0.2.7';
    const err = configError(() =>
      loadConfig({
        env: { SCHED_WORKER_HTTP_DENY: '10.0.0.0/33', SCHED_WORKER_HTTP_ALLOW: 'default' },
      }),
    );
    expect(formatIssues(err.issues).split('\n')).toEqual([
      `SCHED_WORKER_HTTP_ALLOW (worker.httpAllowNetworks): invalid network "default"; ${accepted}; "none" alone for no network (in the environment: comma-separated)`,
      `SCHED_WORKER_HTTP_DENY (worker.httpDenyNetworks): invalid network "10.0.0.0/33"; ${accepted}; "default" stands for the default list; "none" alone for no network (in the environment: comma-separated)`,
    ]);
  });

  test('the environment defaults to process.env', () => {
    const saved = process.env.SCHED_WORKER_CAPACITY;
    process.env.SCHED_WORKER_CAPACITY = '3';
    try {
      expect(loadConfig().worker.capacity).toBe(3);
      expect(loadConfig({ env: {} }).worker.capacity).toBe(8);
    } finally {
      if (saved === undefined) delete process.env.SCHED_WORKER_CAPACITY;
      else process.env.SCHED_WORKER_CAPACITY = saved;
    }
  });

  test('a flag that overrides a bad environment value hides the environment problem', () => {
    const config = loadConfig({ env: { SCHED_PORT: 'x' }, flags: { 'node.port': 8081 } });
    expect(config.node.port).toBe(8081);
  });

  test('unknown keys are errors at every level, in the file and in flags', () => {
    const err = configError(() =>
      loadConfig({
        env: {},
        file: file('zookeeper:\n  connect: x:1\nzk:\n  sesionTimeout: 5s\n'),
        flags: { 'node.hots': 'h' },
      }),
    );
    expect(err.issues).toEqual([
      {
        path: 'zk.sesionTimeout',
        message: 'unknown key; accepted here: connect, root, sessionTimeout, requestTimeout, auth, insecure',
      },
      {
        path: 'node.hots',
        message: 'unknown key; accepted here: host, port, advertisePort, peerMap, dataDir',
      },
      {
        path: 'zookeeper',
        message: 'unknown key; accepted here: zk, db, cluster, node, heartbeat, failover, worker, log',
      },
    ]);
  });

  test('wrong shapes get a clear message', () => {
    const err = configError(() =>
      loadConfig({ env: {}, file: file('zk: 127.0.0.1:2181\nworker:\n  groups: []\n') }),
    );
    expect(err.issues.map((i) => i.path)).toEqual(['zk', 'worker.groups']);
    expect(err.issues[0]?.message).toBe('expected a mapping of settings, got string');
  });

  test('a section that is not a mapping stays an error even when the environment or flags set a key in it', () => {
    const err = configError(() =>
      loadConfig({
        file: file('zk: 127.0.0.1:2181\n'),
        env: { SCHED_ZK_ROOT: '/x' },
        flags: { 'zk.connect': 'h:1' },
      }),
    );
    expect(err.issues).toEqual([{ path: 'zk', message: 'expected a mapping of settings, got string' }]);
  });

  test('secret values are never echoed in error messages', () => {
    const err = configError(() =>
      loadConfig({ env: { SCHED_DB_URL: 'mysql://root:topsecret@h/db', SCHED_ZK_AUTH: 'nocolonsecret' } }),
    );
    expect(err.issues.map((i) => i.path)).toEqual(['zk.auth', 'db.url']);
    expect(err.message).not.toContain('topsecret');
    expect(err.message).not.toContain('nocolonsecret');
    expect(err.message).toContain('SCHED_DB_URL (db.url): invalid value; accepted: a PostgreSQL URL');
  });

  test('a missing file is a ConfigError naming the file', () => {
    const missing = join(dir, 'does-not-exist.yaml');
    const err = configError(() => loadConfig({ file: missing, env: {} }));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toContain(missing);
    expect(err.issues).toEqual([{ path: '', message: 'no such file (ENOENT)' }]);
  });

  test('an unreadable file is a ConfigError naming the file', () => {
    const sub = join(dir, 'a-directory.yaml');
    mkdirSync(sub);
    const err = configError(() => loadConfig({ file: sub, env: {} }));
    expect(err.message).toContain(sub);
    expect(err.issues[0]?.message).toMatch(/is a directory/);

    if (process.getuid?.() !== 0) {
      // root reads any file regardless of its mode, so this part only runs for other users.
      const locked = file('zk: {}\n');
      chmodSync(locked, 0o000);
      const denied = configError(() => loadConfig({ file: locked, env: {} }));
      expect(denied.message).toContain(locked);
      expect(denied.issues[0]?.message).toMatch(/permission denied/);
    }
  });

  test('a file that is not YAML is a ConfigError with the line', () => {
    const path = file('zk:\n  connect: [unclosed\n');
    const err = configError(() => loadConfig({ file: path, env: {} }));
    expect(err.message).toContain(`config file ${path} is not valid YAML or JSON`);
    expect(err.issues[0]?.message).toMatch(/^line 3, column 1: Flow sequence/);
    expect(err.issues[0]?.message).not.toContain('\n');
  });

  test('a file whose top level is not a mapping is a ConfigError', () => {
    const err = configError(() => loadConfig({ env: {}, file: file('- zk\n- db\n') }));
    expect(err.issues).toEqual([{ path: '', message: 'found a list at the top level' }]);
  });
});

describe('loadConfig on duplicate keys', () => {
  test('a key given twice in the file is an error, not a silent last-wins', () => {
    const err = configError(() => loadConfig({ env: {}, file: file('zk:\n  root: /a\n  root: /b\n') }));
    expect(err.issues[0]?.message).toMatch(/^line 3, column 3: .*unique/i);
  });
});
