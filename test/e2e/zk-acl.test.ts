// ZooKeeper ACL by default (issue 14, acceptance 1; docs/security.md#zookeeper): once a real
// master and worker (with SCHED_ZK_AUTH, as TestCluster runs them) have registered, a ZooKeeper
// client without credentials, or with wrong ones, cannot create, change or delete anything under
// the root — no fake worker, no fake master, no fake failover record. Daemons and sched-ctl without
// credentials refuse to start unless told --insecure-zk; a tree an earlier version left open is
// migrated by the first daemon with credentials, or by `sched-ctl zk secure`.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import {
  aclPerms,
  digestId,
  ensureLayout,
  formatAcls,
  OPEN_ACL,
  parseDigestAuth,
  RegistryPaths,
  readTreeAcls,
  ZkSession,
} from '@sched/registry';
import { eventually, registerCleanup } from '@sched/testkit';
import zookeeper from 'node-zookeeper-client';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { binaries, TestCluster } from './cluster.js';
import { ctlEnv, ctlJson, runCtl } from './ctl-helpers.js';

const paths = new RegistryPaths('/sched');
const NO_AUTH = zookeeper.Exception.NO_AUTH;

/** A raw node-zookeeper-client (no sched code in between), optionally with digest credentials. */
async function rawClient(connect: string, auth?: string): Promise<zookeeper.Client> {
  const client = zookeeper.createClient(connect, { sessionTimeout: 10_000, retries: 0 });
  if (auth) client.addAuthInfo('digest', Buffer.from(auth));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`cannot connect to ${connect}`)), 10_000);
    client.once('connected', () => {
      clearTimeout(timer);
      resolve();
    });
    client.connect();
  });
  registerCleanup('raw ZooKeeper client', () => client.close());
  return client;
}

/** The error code a raw request ends with (0 when it succeeded). */
function codeOf(run: (cb: (err: Error | zookeeper.Exception | null) => void) => void): Promise<number> {
  return new Promise((resolve) =>
    run((err) => resolve(err ? ((err as unknown as { code?: number }).code ?? -1) : 0)),
  );
}

/** Runs a daemon binary to its end (a refusal ends it at once); SIGKILL after `timeoutMs`. */
function runDaemon(
  role: 'master' | 'worker',
  env: Record<string, string>,
  args: string[] = [],
  timeoutMs = 30_000,
): Promise<{ code: number | null; output: string }> {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([k, v]) => !k.startsWith('SCHED_') && v !== undefined),
  ) as Record<string, string>;
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [role === 'master' ? binaries.master : binaries.worker, 'start', ...args],
      { env: { ...clean, ...env }, timeout: timeoutMs, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
        resolve({ code, output: `${stdout}${stderr}` });
      },
    );
  });
}

function withoutAuth(env: Record<string, string>): Record<string, string> {
  const { SCHED_ZK_AUTH: _, ...rest } = env;
  return rest;
}

describe('a cluster with credentials', { timeout: 120_000 }, () => {
  let cluster: TestCluster;
  let masterKey: string;
  let workerKey: string;

  beforeAll(async () => {
    cluster = await TestCluster.create();
    masterKey = (await cluster.startMaster()).key;
    workerKey = (await cluster.startWorker()).key;
    await eventually(async () => {
      const status = await ctlJson<{ masters: { leader: boolean }[]; workers: unknown[] }>(cluster, [
        'cluster',
        'status',
      ]);
      expect(status.masters.filter((m) => m.leader)).toHaveLength(1);
      expect(status.workers).toHaveLength(1);
    });
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  test('every znode under the root carries the digest ACL of SCHED_ZK_AUTH, and nothing else', async () => {
    const session = await ZkSession.connect({
      connectString: cluster.zkChrooted,
      auth: cluster.zkAuth,
      sessionTimeoutMs: 10_000,
    });
    registerCleanup('acl session', () => session.close());
    const nodes = await readTreeAcls(session, paths.root);
    const expected = [`digest:${digestId(parseDigestAuth(cluster.zkAuth))}=31`];
    expect(nodes.map((n) => n.path)).toEqual(
      expect.arrayContaining([
        paths.root,
        paths.member('master', masterKey),
        paths.member('worker', workerKey),
        paths.election,
        paths.failoverRecords('worker'),
      ]),
    );
    for (const n of nodes) {
      expect({ path: n.path, acl: n.acl?.map((a) => `${a.id.scheme}:${a.id.id}=${aclPerms(a)}`) }).toEqual({
        path: n.path,
        acl: expected,
      });
    }
  });

  test('acceptance 1: a client without credentials, or with wrong ones, cannot create, change or delete anything under the root', async () => {
    const owner = await ZkSession.connect({
      connectString: cluster.zkChrooted,
      auth: cluster.zkAuth,
      sessionTimeoutMs: 10_000,
    });
    registerCleanup('owner session', () => owner.close());
    const existing = (await readTreeAcls(owner, paths.root)).map((n) => n.path);
    const [user] = cluster.zkAuth.split(':');
    const fakeKey = '127.0.0.1:6666_1700000000000';
    const heartbeat = Buffer.from(
      JSON.stringify({
        address: '127.0.0.1:6666',
        startTime: 1_700_000_000_000,
        pid: 1,
        version: '0.1.0',
        cpu: 0,
        memory: 0,
        load: 0,
        state: 'NORMAL',
        reportedAt: new Date().toISOString(),
        groups: ['default'],
        weight: 1000,
        capacity: 1000,
        running: 0,
        queued: 0,
        backlog: 1000,
      }),
    );
    const record = (role: string, key: string) =>
      Buffer.from(
        JSON.stringify({
          role,
          address: key.split('_')[0],
          startTime: Number(key.split('_')[1]),
          pid: 1,
          sessionId: '0000000000000000',
          failedOverAt: new Date().toISOString(),
          by: fakeKey,
          tasks: 0,
          runs: 0,
        }),
      );
    const open = OPEN_ACL;
    const intruders = {
      'no credentials': await rawClient(cluster.zkChrooted),
      'a wrong password': await rawClient(cluster.zkChrooted, `${user}:not-the-password`),
      'another user': await rawClient(cluster.zkChrooted, 'intruder:whatever'),
    };
    for (const [who, c] of Object.entries(intruders)) {
      const creates: [string, Buffer, number][] = [
        [paths.member('worker', fakeKey), heartbeat, zookeeper.CreateMode.EPHEMERAL],
        [paths.member('master', fakeKey), heartbeat, zookeeper.CreateMode.EPHEMERAL],
        // A failover record for the live worker (it would kill its tasks and exit) and master.
        [
          paths.failoverRecord('worker', workerKey),
          record('worker', workerKey),
          zookeeper.CreateMode.PERSISTENT,
        ],
        [
          paths.failoverRecord('master', masterKey),
          record('master', masterKey),
          zookeeper.CreateMode.PERSISTENT,
        ],
        [`${paths.election}/x-n_`, Buffer.from(fakeKey), zookeeper.CreateMode.EPHEMERAL_SEQUENTIAL],
        [`${paths.locks}/evil`, Buffer.alloc(0), zookeeper.CreateMode.PERSISTENT],
        [`${paths.root}/evil`, Buffer.alloc(0), zookeeper.CreateMode.PERSISTENT],
      ];
      for (const [path, data, mode] of creates) {
        expect({
          who,
          op: 'create',
          path,
          code: await codeOf((cb) => c.create(path, data, open, mode, cb)),
        }).toEqual({ who, op: 'create', path, code: NO_AUTH });
      }
      for (const path of existing) {
        const setData = await codeOf((cb) => c.setData(path, Buffer.from('{}'), -1, cb));
        const setAcl = await codeOf((cb) => c.setACL(path, open, -1, cb));
        const getData = await codeOf((cb) => c.getData(path, cb));
        expect({ who, path, setData, setAcl, getData }).toEqual({
          who,
          path,
          setData: NO_AUTH,
          setAcl: NO_AUTH,
          getData: NO_AUTH,
        });
        const remove = await codeOf((cb) => c.remove(path, -1, cb));
        // The root itself is deleted under its parent (the chroot, not sched's), and is never empty.
        expect({ who, path, remove }).toEqual({
          who,
          path,
          remove: path === paths.root ? zookeeper.Exception.NOT_EMPTY : NO_AUTH,
        });
      }
    }
    // Nothing changed: the same nodes, the worker and master still registered and not failed over.
    expect((await readTreeAcls(owner, paths.root)).map((n) => n.path).sort()).toEqual([...existing].sort());
    expect((await owner.getChildren(paths.failoverRecords('worker'))).children).toEqual([]);
    const status = await ctlJson<{ masters: { key: string }[]; workers: { key: string }[] }>(cluster, [
      'cluster',
      'status',
    ]);
    expect(status.workers.map((w) => w.key)).toEqual([workerKey]);
    expect(status.masters.map((m) => m.key)).toEqual([masterKey]);
  });

  test('daemons and sched-ctl without credentials refuse to start, naming SCHED_ZK_AUTH and --insecure-zk (exit 2)', async () => {
    const env = {
      ...withoutAuth(cluster.baseEnv()),
      SCHED_ZK: cluster.zkChrooted,
      SCHED_DATA_DIR: join(cluster.dataRoot, 'refused'),
    };
    for (const role of ['master', 'worker'] as const) {
      const r = await runDaemon(role, env);
      expect({ role, code: r.code }).toEqual({ role, code: 2 });
      expect(r.output).toContain(`sched-${role}: refusing to use ZooKeeper without credentials`);
      expect(r.output).toContain('SCHED_ZK_AUTH');
      expect(r.output).toContain('--insecure-zk');
      expect(r.output).not.toContain('listening on');
    }
    const ctl = await runCtl(['cluster', 'status'], { env: withoutAuth(ctlEnv(cluster)) });
    expect(ctl.code).toBe(2);
    expect(ctl.stderr).toContain('sched-ctl: refusing to use ZooKeeper without credentials');
    expect(ctl.stderr).toContain('SCHED_ZK_AUTH');
    expect(ctl.stderr).toContain('--insecure-zk');
    // A password-less value is a configuration error too.
    const empty = await runCtl(['cluster', 'status'], {
      env: { ...ctlEnv(cluster), SCHED_ZK_AUTH: 'sched:' },
    });
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain('SCHED_ZK_AUTH (zk.auth): invalid value');
  });

  test('with --insecure-zk against this protected tree: a loud warning, then a clear refusal', async () => {
    const ctl = await runCtl(['cluster', 'status', '--insecure-zk'], { env: withoutAuth(ctlEnv(cluster)) });
    expect(ctl.code).toBe(1);
    expect(ctl.stderr).toContain(
      'sched-ctl: warning: INSECURE: sched-ctl runs without ZooKeeper credentials',
    );
    expect(ctl.stderr).toContain('NO_AUTH');
    expect(ctl.stderr).toContain("Set SCHED_ZK_AUTH to the cluster's credentials");
    const wrong = await runCtl(['zk', 'ls'], {
      env: { ...ctlEnv(cluster), SCHED_ZK_AUTH: 'sched:wrong-password' },
    });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('other than the SCHED_ZK_AUTH given here');

    const worker = await runDaemon(
      'worker',
      {
        ...withoutAuth(cluster.baseEnv()),
        SCHED_ZK: cluster.zkChrooted,
        SCHED_DATA_DIR: join(cluster.dataRoot, 'insecure-worker'),
      },
      ['--insecure-zk'],
    );
    expect(worker.code).toBe(1);
    expect(worker.output.match(/INSECURE: sched-worker runs without ZooKeeper credentials/g)).toHaveLength(1);
    expect(worker.output).toContain('protected by digest credentials, and this process has none');
    expect(worker.output).not.toContain('listening on');
  });
});

describe('an open tree (made without credentials)', { timeout: 120_000 }, () => {
  test('the first daemon with credentials secures it, and says so', async () => {
    const cluster = await TestCluster.create();
    try {
      const open = await ZkSession.connect({ connectString: cluster.zkChrooted, sessionTimeoutMs: 10_000 });
      registerCleanup('open session', () => open.close());
      await ensureLayout(open, paths);
      await open.create(paths.failoverRecord('worker', '127.0.0.1:1_1'), Buffer.from('{}'));
      await open.close();
      const master = await cluster.startMaster();
      await master.child.waitForOutput(/the ZooKeeper tree \/sched was open/, 10_000);
      const session = await ZkSession.connect({
        connectString: cluster.zkChrooted,
        auth: cluster.zkAuth,
        sessionTimeoutMs: 10_000,
      });
      registerCleanup('acl session', () => session.close());
      for (const n of await readTreeAcls(session, paths.root)) {
        expect({ path: n.path, acl: n.acl && formatAcls(n.acl) }).toEqual({
          path: n.path,
          acl: 'digest:sched=cdrwa',
        });
      }
      const intruder = await rawClient(cluster.zkChrooted);
      expect(
        await codeOf((cb) => intruder.remove(paths.failoverRecord('worker', '127.0.0.1:1_1'), -1, cb)),
      ).toBe(NO_AUTH);
    } finally {
      await cluster.stop();
    }
  });

  test('with a live node registered without credentials: the daemon refuses; `sched-ctl zk secure` refuses, then --force migrates', async () => {
    const cluster = await TestCluster.create();
    try {
      const open = await ZkSession.connect({ connectString: cluster.zkChrooted, sessionTimeoutMs: 10_000 });
      registerCleanup('open session', () => open.close());
      await ensureLayout(open, paths);
      const member = paths.member('worker', '127.0.0.1:7777_1700000000000');
      await open.create(member, Buffer.from('{}'), { mode: 'ephemeral' });

      const refused = await runDaemon('master', {
        ...cluster.baseEnv(),
        SCHED_ZK: cluster.zkChrooted,
        SCHED_DATA_DIR: join(cluster.dataRoot, 'refused-master'),
      });
      expect(refused.code).toBe(1);
      expect(refused.output).toContain('the ZooKeeper tree /sched is open');
      expect(refused.output).toContain(member);
      expect(refused.output).toContain('sched-ctl zk secure --force');

      const dry = await runCtl(['zk', 'secure', '--dry-run'], { env: ctlEnv(cluster) });
      expect(dry.code).toBe(1);
      expect(dry.stderr).toContain('live node(s) are registered without credentials and would be locked out');
      expect(dry.stderr).toContain('Nothing was changed');

      const forced = await runCtl(['zk', 'secure', '--force', '--json'], { env: ctlEnv(cluster) });
      expect(forced.code).toBe(0);
      const result = JSON.parse(forced.stdout) as { changed: string[]; failed: unknown[]; acl: string };
      expect(result.changed).toEqual(expect.arrayContaining([paths.root, member, paths.members('master')]));
      expect(result).toMatchObject({ failed: [], acl: 'digest:sched=cdrwa' });
      await expect(open.setData(member, Buffer.from('{}'))).rejects.toMatchObject({ code: 'ZK_NO_AUTH' });

      const again = await runCtl(['zk', 'secure'], { env: ctlEnv(cluster) });
      expect(again.code).toBe(0);
      expect(again.stdout).toMatch(/set the ACL digest:sched=cdrwa on 0 znode\(s\); \d+ already had it/);
      await cluster.startMaster();
    } finally {
      await cluster.stop();
    }
  });
});
