// Secrets from files, not left in the daemon's environment (issue 14, item 4 — the part about the
// cluster secret's source; docs/security.md#secrets):
// - a master reads the cluster secret, the ZooKeeper credentials and the database URL from
//   SCHED_*_FILE files, a worker from systemd credentials (CREDENTIALS_DIRECTORY), and a workflow
//   runs between them: neither the task's environment nor any ancestor's /proc/<pid>/environ
//   holds a secret value;
// - a worker given the secrets in plain variables deletes them from its environment once it is
//   configured: its task supervisor and its tasks (children) do not show them in
//   /proc/<pid>/environ — the worker's own /proc/<pid>/environ still does (the kernel keeps the
//   initial environment), which is why the _FILE variants exist;
// - a missing secret file, a variable given twice, a cluster secret shorter than 32 bytes: the
//   daemon refuses to start (exit 2) with a message naming the variable (and the path).
// Tasks run as the daemon's user here: reading the secret files themselves is issue 14 item 4's
// other half (tasks as another OS user), not tested here.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually } from '@sched/testkit';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { binaries, type DaemonHandle, TestCluster } from './cluster.js';

const SECRET_NAMES = /^(SCHED_CLUSTER_SECRET|SCHED_ZK_AUTH|SCHED_DB_URL|CREDENTIALS_DIRECTORY)/;

let cluster: TestCluster;
let master: DaemonHandle;
let fileWorker: DaemonHandle;
let plainWorker: DaemonHandle;
let secretsDir: string;
/** The secret values that must not show: the cluster secret, the ZooKeeper password, the database password. */
let values: string[];

function environOf(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return []; // gone meanwhile
  }
}

function childrenOf(pid: number): number[] {
  const all: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift() as number;
    let kids: number[] = [];
    try {
      kids = readFileSync(`/proc/${p}/task/${p}/children`, 'utf8')
        .trim()
        .split(/\s+/)
        .filter(Boolean)
        .map(Number);
    } catch {
      // gone
    }
    all.push(...kids);
    queue.push(...kids);
  }
  return all;
}

beforeAll(async () => {
  cluster = await TestCluster.create();
  secretsDir = mkdtempSync(join(tmpdir(), 'sched-secret-files-'));
  const file = (name: string, content: string) => {
    const path = join(secretsDir, name);
    writeFileSync(path, `${content}\n`, { mode: 0o600 });
    return path;
  };
  const credentials = join(secretsDir, 'credentials');
  mkdirSync(credentials, { mode: 0o700 });
  writeFileSync(join(credentials, 'cluster-secret'), cluster.secret, { mode: 0o400 });
  writeFileSync(join(credentials, 'zk-auth'), `${cluster.zkAuth}\n`, { mode: 0o400 });
  const dbPassword = decodeURIComponent(new URL(cluster.dbUrl).password);
  values = [
    cluster.secret,
    cluster.zkAuth.slice(cluster.zkAuth.indexOf(':') + 1),
    ...(dbPassword ? [dbPassword] : []),
  ];

  // Empty values count as unset: the cluster's plain variables are switched off this way.
  master = await cluster.startMaster({
    SCHED_CLUSTER_SECRET: '',
    SCHED_ZK_AUTH: '',
    SCHED_DB_URL: '',
    SCHED_CLUSTER_SECRET_FILE: file('cluster-secret', cluster.secret),
    SCHED_ZK_AUTH_FILE: file('zk-auth', cluster.zkAuth),
    SCHED_DB_URL_FILE: file('db-url', cluster.dbUrl),
  });
  fileWorker = await cluster.startWorker({
    SCHED_CLUSTER_SECRET: '',
    SCHED_ZK_AUTH: '',
    SCHED_DB_URL: '',
    CREDENTIALS_DIRECTORY: credentials,
    SCHED_WORKER_GROUPS: 'from-files',
  });
  plainWorker = await cluster.startWorker({ SCHED_WORKER_GROUPS: 'plain' });
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
});

async function runToEnd(workflow: string): Promise<{ state: string; logTail: string }> {
  await cluster.trigger(workflow);
  return eventually(
    async () => {
      const rows = await cluster.query<{ state: string; log_tail: string | null }>(
        `SELECT r.state, a.log_tail FROM runs r JOIN workflows w ON w.id = r.workflow_id
           LEFT JOIN task_attempts a ON a.run_id = r.id WHERE w.name = $1`,
        [workflow],
      );
      const row = rows[0];
      if (!row || !['succeeded', 'failed', 'cancelled'].includes(row.state))
        throw new Error(`run of ${workflow} not finished: ${JSON.stringify(rows)}`);
      return { state: row.state, logTail: row.log_tail ?? '' };
    },
    { timeoutMs: 60_000, intervalMs: 200 },
  ).catch((err) => {
    throw new Error(`${(err as Error).message}\n${cluster.output()}`);
  });
}

describe('secrets from files and systemd credentials', { timeout: 120_000 }, () => {
  test('a master (SCHED_*_FILE) and a worker (CREDENTIALS_DIRECTORY) run a workflow; no secret value in the task or its ancestors', async () => {
    // The task prints which secret-named variables it has, and those of every ancestor process.
    const names = 'SCHED_CLUSTER_SECRET|SCHED_ZK_AUTH|SCHED_DB_URL|CREDENTIALS_DIRECTORY';
    await cluster.apply({
      name: 'secret-files-probe',
      tasks: [
        {
          name: 'probe',
          type: 'shell',
          workerGroup: 'from-files',
          command: [
            `echo "self: [$(env | grep -E '^(${names})' | tr '\\n' ' ')]"`,
            'p=$PPID',
            'while [ "$p" -gt 1 ]; do',
            `  echo "pid $p: [$(tr '\\0' '\\n' < /proc/$p/environ 2>/dev/null | grep -E '^(${names})' | tr '\\n' ' ')]"`,
            `  p=$(sed 's/.*) //' /proc/$p/stat | cut -d' ' -f2)`,
            'done',
          ].join('\n'),
        },
      ],
    });
    const { state, logTail } = await runToEnd('secret-files-probe');
    expect(state, logTail).toBe('succeeded');
    expect(logTail).toContain('self: []');
    // The worker daemon is an ancestor: its initial environment names the credentials folder
    // and the emptied variables, but holds no secret value.
    expect(logTail).toContain(`pid ${fileWorker.child.pid}: [`);
    for (const value of values) expect(logTail).not.toContain(value);
    // The daemons' own initial environments hold no secret value either.
    for (const daemon of [master, fileWorker]) {
      const env = environOf(daemon.child.pid).join('\n');
      for (const value of values) expect(env).not.toContain(value);
    }
    expect(environOf(master.child.pid)).toContain(
      `SCHED_CLUSTER_SECRET_FILE=${join(secretsDir, 'cluster-secret')}`,
    );
  });

  test('a worker given plain variables deletes them: its supervisor and its tasks do not inherit them', async () => {
    await cluster.apply({
      name: 'secret-env-probe',
      tasks: [{ name: 'sleeper', type: 'shell', workerGroup: 'plain', command: 'echo started; sleep 4' }],
    });
    await cluster.trigger('secret-env-probe');
    const pid = plainWorker.child.pid;
    // While the task runs: every descendant of the worker (the task supervisor, the task's shell
    // and its sleep) shows no secret-named variable in /proc/<pid>/environ.
    const children = await eventually(
      () => {
        const kids = childrenOf(pid);
        const sleeping = kids.some((k) => readFileSync(`/proc/${k}/cmdline`, 'utf8').startsWith('sleep'));
        if (!sleeping) throw new Error(`no task running under the worker yet (children: ${kids.join(', ')})`);
        return kids;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    expect(children.length).toBeGreaterThanOrEqual(3); // supervisor, shell, sleep
    for (const child of children) {
      const named = environOf(child).filter((line) => SECRET_NAMES.test(line));
      expect(named, `pid ${child}: ${readFileSync(`/proc/${child}/cmdline`, 'utf8')}`).toEqual([]);
      for (const value of values) expect(environOf(child).join('\n')).not.toContain(value);
    }
    // The documented limit: the kernel keeps the daemon's own initial environment; only the
    // _FILE variants or credentials (the test above) keep the secret out of it.
    expect(environOf(pid)).toContain(`SCHED_CLUSTER_SECRET=${cluster.secret}`);
    const { state } = await runToEnd('secret-env-probe');
    expect(state).toBe('succeeded');
  });
});

describe('refusals at start', () => {
  function startMaster(env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
    const clean = Object.fromEntries(
      Object.entries(process.env).filter(([k, v]) => !k.startsWith('SCHED_') && v !== undefined),
    ) as Record<string, string>;
    return new Promise((resolve) => {
      execFile(
        process.execPath,
        [binaries.master, 'start'],
        {
          env: { ...clean, SCHED_ZK: '127.0.0.1:1', SCHED_ZK_AUTH: `sched:${'x'.repeat(32)}`, ...env },
          timeout: 30_000,
        },
        (err, _stdout, stderr) =>
          resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stderr }),
      );
    });
  }

  test('a missing secret file, a secret given twice, a short cluster secret: exit 2 with a clear message', async () => {
    const missing = join(tmpdir(), 'sched-no-such-secret-file');
    const noFile = await startMaster({ SCHED_CLUSTER_SECRET_FILE: missing });
    expect(noFile.code).toBe(2);
    expect(noFile.stderr).toContain(
      `SCHED_CLUSTER_SECRET_FILE (cluster.secret): cannot read ${missing}: no such file (ENOENT)`,
    );

    const dir = mkdtempSync(join(tmpdir(), 'sched-secret-twice-'));
    const file = join(dir, 'secret');
    writeFileSync(file, 'x'.repeat(40));
    const twice = await startMaster({
      SCHED_CLUSTER_SECRET: 'y'.repeat(40),
      SCHED_CLUSTER_SECRET_FILE: file,
    });
    expect(twice.code).toBe(2);
    expect(twice.stderr).toContain(
      'SCHED_CLUSTER_SECRET and SCHED_CLUSTER_SECRET_FILE (cluster.secret): both are set',
    );

    const short = await startMaster({ SCHED_CLUSTER_SECRET: 'test-cluster-secret' });
    expect(short.code).toBe(2);
    expect(short.stderr).toContain('SCHED_CLUSTER_SECRET (cluster.secret): too short (19 bytes)');
    expect(short.stderr).not.toContain('test-cluster-secret');
  });
});
