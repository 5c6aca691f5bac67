// Every `sched-ctl` command end to end against real daemons (one
// master, one worker as child processes), by spawning the real `sched-ctl` binary; every
// `--json` output is checked against the documented shape; bad input gives a clear message and
// a non-zero exit and changes nothing.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FailoverRecords, RegistryPaths, ZkSession } from '@sched/registry';
import { createPool } from '@sched/store';
import { eventually, FaultProxy } from '@sched/testkit';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { z } from 'zod';
import { type DaemonHandle, TestCluster } from './cluster.js';
import { ctlEnv, ctlJson, emptyDir, runCtl } from './ctl-helpers.js';
import {
  applyShape,
  clusterStatusShape,
  failoverListShape,
  runListShape,
  runShowShape,
  triggerShape,
  workflowGetShape,
  workflowListShape,
  zkGetShape,
  zkLsShape,
} from './ctl-shapes.js';

let cluster: TestCluster;
let master: DaemonHandle;
let master2: DaemonHandle;
let worker: DaemonHandle;
const defs = emptyDir();

beforeAll(async () => {
  cluster = await TestCluster.create();
  master = await cluster.startMaster();
  master2 = await cluster.startMaster();
  worker = await cluster.startWorker();
  // Two files in one folder: `workflow apply -f DIR` applies both.
  writeFileSync(
    join(defs, 'a-hello.yaml'),
    [
      'name: ctl-hello',
      'params: { GREETING: hi }',
      'tasks:',
      '  - name: greet',
      '    type: shell',
      '    command: echo "hello $GREETING from $SCHED_TASK_NAME"',
      '  - name: after',
      '    type: noop',
      '    dependsOn: [greet]',
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(defs, 'b-sleepy.json'),
    JSON.stringify({
      name: 'ctl-sleepy',
      tasks: [{ name: 'nap', type: 'shell', command: 'echo napping; sleep 60' }],
    }),
  );
});

afterAll(async () => {
  await cluster?.stop();
});

function shaped<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const r = schema.safeParse(value);
  if (!r.success)
    throw new Error(`not the documented shape: ${r.error.message}\n${JSON.stringify(value, null, 2)}`);
  return r.data;
}

async function workflowNames(): Promise<string[]> {
  return (await cluster.query<{ name: string }>('SELECT name FROM workflows ORDER BY name')).map(
    (r) => r.name,
  );
}

async function runEnded(id: number, timeoutMs = 60_000) {
  return eventually(
    async () => {
      const run = shaped(runShowShape, await ctlJson(cluster, ['run', 'show', String(id)]));
      if (!['succeeded', 'failed', 'cancelled'].includes(run.state))
        throw new Error(`run ${id} is ${run.state}`);
      return run;
    },
    { timeoutMs, intervalMs: 500 },
  ).catch((err) => {
    throw new Error(`${(err as Error).message}\n${cluster.output()}`);
  });
}

// Each sched-ctl invocation is a fresh Node process (~1 s of start-up on a busy machine): generous per-test time.
describe('sched-ctl against a running cluster', { timeout: 180_000 }, () => {
  test('cluster status shows the leader master and the worker (JSON shape and table)', async () => {
    const status = shaped(clusterStatusShape, await ctlJson(cluster, ['cluster', 'status']));
    expect(status.masters.map((m) => m.address).sort()).toEqual([master.address, master2.address].sort());
    const leaders = status.masters.filter((m) => m.leader);
    expect(leaders).toHaveLength(1);
    // The leader is the master holding the lowest election candidate, as ZooKeeper says.
    const session = await ZkSession.connect({
      connectString: cluster.zkChrooted,
      auth: cluster.zkAuth,
      sessionTimeoutMs: 10_000,
    });
    try {
      const { children } = await session.getChildren('/sched/election');
      const lowest = children.sort((a, b) =>
        a.slice(a.lastIndexOf('n_')).localeCompare(b.slice(b.lastIndexOf('n_'))),
      )[0];
      const holder = (await session.getData(`/sched/election/${lowest}`)).data.toString();
      expect(leaders[0]?.key).toBe(holder);
    } finally {
      await session.close();
    }
    expect(status.workers.map((w) => w.address)).toEqual([worker.address]);
    expect(status.workers[0]?.groups).toEqual(['default']);
    const table = await runCtl(['cluster', 'status'], { env: ctlEnv(cluster) });
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(new RegExp(`${leaders[0]?.address}\\s+\\*`));
    expect(table.stdout).toContain(worker.address);
  });

  test('zk ls (default root, -R) and zk get show znodes with data and stat', async () => {
    const top = shaped(zkLsShape, await ctlJson(cluster, ['zk', 'ls']));
    expect(top.map((n) => n.path)).toEqual(expect.arrayContaining(['/sched/masters', '/sched/workers']));
    const all = shaped(zkLsShape, await ctlJson(cluster, ['zk', 'ls', '/sched', '-R']));
    const masterPath = `/sched/masters/${master.key}`;
    const node = all.find((n) => n.path === masterPath);
    expect(node?.ephemeralOwner).toMatch(/^[0-9a-f]{16}$/);
    const got = shaped(zkGetShape, await ctlJson(cluster, ['zk', 'get', masterPath]));
    expect((got.data as { address: string }).address).toBe(master.address);
    expect(got.stat.ephemeralOwner).toBe(node?.ephemeralOwner);
    const human = await runCtl(['zk', 'get', masterPath], { env: ctlEnv(cluster) });
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(`"address": "${master.address}"`);
    expect(human.stdout).toMatch(/ephemeralOwner\s+0x[0-9a-f]{16}/);
    expect(human.stdout).toMatch(/version\s+\d+/);
    const missing = await runCtl(['zk', 'get', '/sched/no-such-node'], { env: ctlEnv(cluster) });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('znode /sched/no-such-node does not exist');
  });

  test('a bad definition file is refused with every problem named; nothing is applied', async () => {
    const bad = emptyDir();
    // One good and one bad file in the folder: all or nothing.
    writeFileSync(join(bad, 'good.yaml'), 'name: ctl-good\ntasks:\n  - name: t\n    type: noop\n');
    writeFileSync(join(bad, 'wrong.yaml'), 'name: Bad_Name\ntasks:\n  - name: t\n    type: teleport\n');
    const r = await runCtl(['workflow', 'apply', '-f', bad], { env: ctlEnv(cluster) });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('nothing was applied');
    expect(r.stderr).toMatch(/name/);
    expect(r.stderr).toMatch(/type/);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(await workflowNames()).toEqual([]);
    const notThere = await runCtl(['workflow', 'apply', '-f', join(bad, 'nope.yaml')], {
      env: ctlEnv(cluster),
    });
    expect(notThere.code).toBe(2);
    expect(notThere.stderr).toContain('no such file or folder');
  });

  test('workflow apply -f DIR, list, get; re-applying is unchanged', async () => {
    const applied = shaped(applyShape, await ctlJson(cluster, ['workflow', 'apply', '-f', defs]));
    expect(applied.map((a) => [a.name, a.status])).toEqual([
      ['ctl-hello', 'created'],
      ['ctl-sleepy', 'created'],
    ]);
    const again = shaped(
      applyShape,
      await ctlJson(cluster, ['workflow', 'apply', '-f', join(defs, 'a-hello.yaml')]),
    );
    expect(again).toEqual([{ name: 'ctl-hello', version: 1, status: 'unchanged' }]);
    const list = shaped(workflowListShape, await ctlJson(cluster, ['workflow', 'list']));
    expect(list.map((w) => [w.name, w.tasks, w.schedule])).toEqual([
      ['ctl-hello', 2, null],
      ['ctl-sleepy', 1, null],
    ]);
    const got = shaped(workflowGetShape, await ctlJson(cluster, ['workflow', 'get', 'ctl-hello']));
    expect(got.definition.tasks.map((t) => t.name)).toEqual(['greet', 'after']);
    const table = await runCtl(['workflow', 'list'], { env: ctlEnv(cluster) });
    expect(table.stdout).toMatch(/ctl-hello\s+1\s+2\s+\(manual\)/);
  });

  let helloRun = 0;
  test('workflow trigger with params → run show, run list with filters, task logs', async () => {
    const t = shaped(
      triggerShape,
      await ctlJson(cluster, ['workflow', 'trigger', 'ctl-hello', '-p', 'GREETING=bonjour']),
    );
    helloRun = t.runId;
    const run = await runEnded(t.runId);
    expect(run.state).toBe('succeeded');
    expect(run.tasks.map((x) => [x.name, x.state])).toEqual([
      ['greet', 'succeeded'],
      ['after', 'succeeded'],
    ]);
    const greet = run.tasks[0]?.attempts[0];
    expect(greet?.worker).toBe(worker.address);
    expect(greet?.exitCode).toBe(0);
    expect(run.fireToStartMs).toBeNull(); // a manual run has no fire time

    const all = shaped(runListShape, await ctlJson(cluster, ['run', 'list']));
    expect(all.map((r) => r.id)).toContain(t.runId);
    expect(all[0]?.fireTime).toBeNull(); // manual
    const filtered = shaped(
      runListShape,
      await ctlJson(cluster, [
        'run',
        'list',
        '--workflow',
        'ctl-hello',
        '--state',
        'succeeded',
        '--limit',
        '1',
      ]),
    );
    expect(filtered.map((r) => r.id)).toEqual([t.runId]);
    const future = await ctlJson(cluster, ['run', 'list', '--since', '2999-01-01T00:00:00Z']);
    expect(future).toEqual([]);
    const badState = await runCtl(['run', 'list', '--state', 'sleeping'], { env: ctlEnv(cluster) });
    expect(badState.code).toBe(2);
    expect(badState.stderr).toContain(
      'state: expected one of pending, running, succeeded, failed, cancelled',
    );
    // The refusal came from the master and was checked against the OpenAPI document.
    expect(badState.apiResponses.map((r) => `${r.method} ${r.path.split('?')[0]} ${r.status}`)).toContain(
      'GET /v1/runs 400',
    );

    const logs = await runCtl(['task', 'logs', String(greet?.id)], { env: ctlEnv(cluster) });
    expect(logs.code).toBe(0);
    expect(logs.stdout).toContain('hello bonjour from greet');
    const followed = await runCtl(['task', 'logs', String(greet?.id), '-f'], {
      env: ctlEnv(cluster),
      timeoutMs: 20_000,
    });
    expect(followed.code).toBe(0); // the attempt has ended: following stops at the end of its log
    expect(followed.stdout).toContain('hello bonjour from greet');

    const human = await runCtl(['run', 'show', String(t.runId)], { env: ctlEnv(cluster) });
    expect(human.stdout).toMatch(/greet\s+succeeded\s+1\s+\d+/);
  });

  test('workflow trigger refuses a parameter the workflow does not declare and a reserved name (400, exit 2, nothing enqueued)', async () => {
    const count = async () =>
      (
        await cluster.query<{ n: number }>(
          'SELECT ((SELECT count(*) FROM commands) + (SELECT count(*) FROM runs))::int AS n',
        )
      )[0]?.n;
    const before = await count();
    const trigger = (workflow: string, ...params: string[]) =>
      runCtl(['workflow', 'trigger', workflow, ...params.flatMap((p) => ['-p', p])], {
        env: ctlEnv(cluster),
      });

    const undeclared = await trigger('ctl-hello', 'GREETING=hi', 'COLOUR=red');
    expect(undeclared.code).toBe(2);
    expect(undeclared.stderr).toContain(
      'params.COLOUR: COLOUR is not a parameter of workflow ctl-hello; declared: GREETING',
    );
    expect(undeclared.apiResponses.map((r) => `${r.method} ${r.path} ${r.status}`)).toContain(
      'POST /v1/workflows/ctl-hello/trigger 400',
    );
    const reserved = await trigger('ctl-hello', 'LD_PRELOAD=/tmp/evil.so', 'PATH=/tmp', 'BASH_ENV=/tmp/x');
    expect(reserved.code).toBe(2);
    for (const name of ['LD_PRELOAD', 'PATH', 'BASH_ENV']) {
      expect(reserved.stderr).toContain(`params.${name}: parameter name ${name} is reserved`);
    }
    const none = await trigger('ctl-sleepy', 'X=1');
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('X is not a parameter of workflow ctl-sleepy: it declares none');

    // Over REST: the documented error, one issue per refused name.
    const res = await fetch(`http://${master.address}/v1/workflows/ctl-hello/trigger`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${cluster.secret}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ params: { GREETING: 'hi', COLOUR: 'red', SCHED_RUN_ID: '1' } }),
      signal: AbortSignal.timeout(10_000),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({
      error: {
        code: 'REQUEST_INVALID',
        message: expect.stringContaining('params.COLOUR: COLOUR is not a parameter of workflow ctl-hello'),
        issues: [
          {
            path: 'params.COLOUR',
            message: 'COLOUR is not a parameter of workflow ctl-hello; declared: GREETING',
          },
          {
            path: 'params.SCHED_RUN_ID',
            message:
              "parameter name SCHED_RUN_ID is reserved: SCHED_* names are sched's own variables (docs/tasks.md#environment)",
          },
        ],
      },
    });
    expect(await count()).toBe(before);
  });

  test('run rerun makes a new run of an ended run', async () => {
    const r = await ctlJson<{ commandId: number; rerunOf: number; runId: number }>(cluster, [
      'run',
      'rerun',
      String(helloRun),
    ]);
    expect(r.rerunOf).toBe(helloRun);
    expect(r.runId).toBeGreaterThan(helloRun);
    expect((await runEnded(r.runId)).state).toBe('succeeded');
  });

  test('task logs -f follows a running task; run cancel stops it', async () => {
    const t = shaped(triggerShape, await ctlJson(cluster, ['workflow', 'trigger', 'ctl-sleepy']));
    const attemptId = await eventually(
      async () => {
        const run = shaped(runShowShape, await ctlJson(cluster, ['run', 'show', String(t.runId)]));
        const a = run.tasks[0]?.attempts[0];
        if (a?.state !== 'running') throw new Error(`attempt not running yet: ${JSON.stringify(a)}`);
        return a.id;
      },
      { timeoutMs: 30_000, intervalMs: 300 },
    );
    // Following a running task: the command is still streaming when the run is cancelled.
    const following = runCtl(['task', 'logs', String(attemptId), '-f'], {
      env: ctlEnv(cluster),
      timeoutMs: 40_000,
    });
    await new Promise((r) => setTimeout(r, 1_500));
    const busyDelete = await runCtl(['workflow', 'delete', 'ctl-sleepy'], { env: ctlEnv(cluster) });
    expect(busyDelete.code).toBe(1);
    expect(busyDelete.stderr).toContain('active run');
    // Ask the master that does NOT own the run: it must wake the owner (NOTIFY) to kill the attempt.
    const owner = shaped(runShowShape, await ctlJson(cluster, ['run', 'show', String(t.runId)])).owner;
    const other = [master, master2].find((m) => m.key !== owner) as DaemonHandle;
    expect([master.key, master2.key]).toContain(owner);
    const c = await ctlJson<{ id: number; state: string }>(cluster, [
      'run',
      'cancel',
      String(t.runId),
      '--master',
      other.address,
    ]);
    expect(c.id).toBe(t.runId);
    const ended = await runEnded(t.runId, 30_000);
    expect(ended.state).toBe('cancelled');
    expect(ended.tasks[0]?.attempts[0]?.state).toBe('killed');
    const f = await following;
    expect(f.code).toBe(0);
    expect(f.stdout).toContain('napping');
    expect(f.ms).toBeLessThan(40_000); // it ended with the attempt, not by our timeout
    const twice = await runCtl(['run', 'cancel', String(t.runId)], { env: ctlEnv(cluster) });
    expect(twice.code).toBe(1);
    expect(twice.stderr).toContain('already ended');
  });

  test('pause and resume a scheduled workflow; delete a workflow', async () => {
    const file = join(emptyDir(), 'sched.yaml');
    writeFileSync(
      file,
      'name: ctl-scheduled\nschedule:\n  cron: "0 0 3 * * ?"\n  timezone: Europe/Paris\ntasks:\n  - name: t\n    type: noop\n',
    );
    shaped(applyShape, await ctlJson(cluster, ['workflow', 'apply', '-f', file]));
    const paused = await ctlJson<{ paused: boolean; nextFireTime: string | null }>(cluster, [
      'workflow',
      'pause',
      'ctl-scheduled',
    ]);
    expect(paused).toMatchObject({ paused: true, nextFireTime: null });
    const listed = shaped(workflowListShape, await ctlJson(cluster, ['workflow', 'list']));
    expect(listed.find((w) => w.name === 'ctl-scheduled')?.schedule).toEqual({
      cron: '0 0 3 * * ?',
      timezone: 'Europe/Paris',
      paused: true,
    });
    const resumed = await ctlJson<{ paused: boolean; nextFireTime: string | null }>(cluster, [
      'workflow',
      'resume',
      'ctl-scheduled',
    ]);
    expect(resumed.paused).toBe(false);
    expect(Date.parse(resumed.nextFireTime ?? '')).toBeGreaterThan(Date.now());
    const noSchedule = await runCtl(['workflow', 'pause', 'ctl-hello'], { env: ctlEnv(cluster) });
    expect(noSchedule.code).toBe(1);
    expect(noSchedule.stderr).toContain('has no schedule');

    const del = await ctlJson<{ deleted: string }>(cluster, ['workflow', 'delete', 'ctl-scheduled']);
    expect(del).toEqual({ deleted: 'ctl-scheduled' });
    expect(await workflowNames()).not.toContain('ctl-scheduled');
    const gone = await runCtl(['workflow', 'get', 'ctl-scheduled'], { env: ctlEnv(cluster) });
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain('no workflow named "ctl-scheduled"');
  });

  test('failover list and purge', async () => {
    expect(await ctlJson(cluster, ['failover', 'list'])).toEqual([]);
    // A record as the leader writes it for a dead worker (the failover itself is tested elsewhere).
    const session = await ZkSession.connect({
      connectString: cluster.zkChrooted,
      auth: cluster.zkAuth,
      sessionTimeoutMs: 10_000,
    });
    try {
      await new FailoverRecords(session, new RegistryPaths('/sched')).write('127.0.0.1:9_1700000000000', {
        role: 'worker',
        address: '127.0.0.1:9',
        startTime: 1_700_000_000_000,
        pid: 4242,
        sessionId: '0123456789abcdef',
        failedOverAt: new Date(Date.now() - 3_600_000).toISOString(),
        by: master.key,
        tasks: 2,
        runs: 1,
      });
    } finally {
      await session.close();
    }
    const list = shaped(failoverListShape, await ctlJson(cluster, ['failover', 'list']));
    expect(list).toMatchObject([
      { role: 'worker', address: '127.0.0.1:9', startTime: 1_700_000_000_000, by: master.key },
    ]);
    const table = await runCtl(['failover', 'list'], { env: ctlEnv(cluster) });
    expect(table.stdout).toMatch(/worker\s+127\.0\.0\.1:9\s/);
    const kept = await ctlJson<{ removed: string[] }>(cluster, ['failover', 'purge']); // default 7d
    expect(kept.removed).toEqual([]);
    const purged = await ctlJson<{ removed: string[] }>(cluster, [
      'failover',
      'purge',
      '--older-than',
      '30m',
    ]);
    expect(purged.removed).toEqual(['/sched/failover-finish-nodes/worker/127.0.0.1:9_1700000000000']);
    expect(await ctlJson(cluster, ['failover', 'list'])).toEqual([]);
  });

  test('db migrate: the schema is already current', async () => {
    expect(await ctlJson(cluster, ['db', 'migrate'])).toEqual({ applied: [] });
    const human = await runCtl(['db', 'migrate'], { env: ctlEnv(cluster) });
    expect(human.code).toBe(0);
    expect(human.stdout).toContain('up to date');
  });

  test('db prune: deletes ended runs older than --older-than with their attempts, in batches; --dry-run counts; bad input exits 2', async () => {
    // Runs as if they had ended 20 and 12 days ago (the masters' own retention, 30 days, leaves them).
    const file = join(emptyDir(), 'prune.yaml');
    writeFileSync(file, 'name: ctl-prune\ntasks:\n  - name: greet\n    type: noop\n');
    shaped(applyShape, await ctlJson(cluster, ['workflow', 'apply', '-f', file]));
    const [wf] = await cluster.query<{ id: number; version: number }>(
      `SELECT id, current_version AS version FROM workflows WHERE name = 'ctl-prune'`,
    );
    const insert = (count: number, daysAgo: number) =>
      cluster.query<{ id: number }>(
        `WITH r AS (
           INSERT INTO runs (workflow_id, workflow_version, trigger, state, created_at, started_at, ended_at)
           SELECT $1, $2, 'manual', 'succeeded', now() - $4::int * interval '1 day',
                  now() - $4::int * interval '1 day', now() - $4::int * interval '1 day' - i * interval '1 second'
             FROM generate_series(1, $3) AS i
           RETURNING id
         ), a AS (
           INSERT INTO task_attempts (run_id, task_name, attempt, state) SELECT id, 'greet', 1, 'succeeded' FROM r
         )
         SELECT id FROM r`,
        [wf?.id, wf?.version, count, daysAgo],
      );
    const old = (await insert(1205, 20)).map((r) => r.id);
    const newer = (await insert(3, 12)).map((r) => r.id);
    const stillThere = async (ids: number[]) =>
      (
        await cluster.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM runs WHERE id = ANY($1::bigint[])',
          [ids],
        )
      )[0]?.n;

    const dry = await ctlJson<Record<string, unknown>>(cluster, [
      'db',
      'prune',
      '--older-than',
      '15d',
      '--dry-run',
    ]);
    expect(dry).toMatchObject({ dryRun: true, olderThanMs: 15 * 86_400_000, runs: 1205, attempts: 1205 });
    expect(Date.parse(String(dry.endedBefore))).toBeLessThan(Date.now() - 15 * 86_400_000 + 60_000);
    expect(await stillThere(old)).toBe(1205);

    const pruned = await runCtl(['db', 'prune', '--older-than', '15d'], { env: ctlEnv(cluster) });
    expect(pruned.code, pruned.stderr).toBe(0);
    expect(pruned.stdout).toMatch(
      /^deleted 1205 run\(s\) and 1205 task attempt\(s\) that ended before \S+ \(older than 15d\)\n$/,
    );
    expect(pruned.stderr).toContain('1000 run(s), 1000 attempt(s) deleted so far'); // batch by batch
    expect(await stillThere(old)).toBe(0);
    expect(await stillThere(newer)).toBe(3);
    expect(
      (
        await cluster.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM task_attempts WHERE run_id = ANY($1::bigint[])',
          [old],
        )
      )[0]?.n,
    ).toBe(0);

    const rest = await ctlJson(cluster, ['db', 'prune', '--older-than', '10d']);
    expect(rest).toMatchObject({ dryRun: false, runs: 3, attempts: 3 });
    expect(await stillThere(newer)).toBe(0);

    const bad = await runCtl(['db', 'prune', '--older-than', 'soon'], { env: ctlEnv(cluster) });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(
      '--older-than: invalid duration "soon"; accepted: a number of milliseconds or a string like',
    );
    const keepForever = await runCtl(['db', 'prune'], {
      env: { ...ctlEnv(cluster), SCHED_DB_RETENTION: '0' },
    });
    expect(keepForever.code).toBe(2);
    expect(keepForever.stderr).toContain('give --older-than');
    for (const r of [bad, keepForever]) expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(await ctlJson(cluster, ['workflow', 'delete', 'ctl-prune'])).toEqual({ deleted: 'ctl-prune' });
  });

  test('node.peerMap: sched-ctl dials a master through the address the map gives; a bad map is refused', async () => {
    // Each master is reachable through a forwarder; the map sends sched-ctl there.
    const proxies = await Promise.all(
      [master, master2].map((m) => {
        const [host, port] = m.address.split(':');
        return FaultProxy.start({ host: host as string, port: Number(port) });
      }),
    );
    const peerMap = [master, master2].map((m, i) => `${m.address}=${proxies[i]?.address}`).join(',');
    const env = { ...ctlEnv(cluster), SCHED_PEER_MAP: peerMap };
    const listed = await runCtl(['workflow', 'list', '--json'], { env });
    expect(listed.code, listed.stderr).toBe(0);
    expect(proxies.reduce((n, p) => n + p.acceptedConnections(), 0)).toBeGreaterThan(0);
    // With the forwarders refusing, no master is reached: the map is really what is dialled.
    for (const p of proxies) p.setMode('down');
    const refused = await runCtl(['workflow', 'list'], { env });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain(proxies[0]?.address);
    const bad = await runCtl(['workflow', 'list'], {
      env: { ...ctlEnv(cluster), SCHED_PEER_MAP: `${master.address}` },
    });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(`SCHED_PEER_MAP (node.peerMap): invalid entry "${master.address}" (no "=")`);
    await Promise.all(proxies.map((p) => p.close()));
  });

  test('with no variables, .sched-data/standalone.json in the working folder finds the cluster', async () => {
    const dir = emptyDir();
    mkdirSync(join(dir, '.sched-data'));
    writeFileSync(
      join(dir, '.sched-data', 'standalone.json'),
      JSON.stringify({
        zk: cluster.zkChrooted,
        dbUrl: cluster.dbUrl,
        secret: cluster.secret,
        root: '/sched',
        zkAuth: cluster.zkAuth,
      }),
    );
    const r = await runCtl(['cluster', 'status', '--json'], { cwd: dir });
    expect(r.code).toBe(0);
    expect(shaped(clusterStatusShape, JSON.parse(r.stdout)).masters.map((m) => m.address)).toContain(
      master.address,
    );
    const runs = await runCtl(['run', 'list', '--json'], { cwd: dir });
    expect(runs.code).toBe(0);
    expect(shaped(runListShape, JSON.parse(runs.stdout)).length).toBeGreaterThan(0);
  });

  test('errors: unknown command, missing secret, wrong ZooKeeper address, unreachable PostgreSQL', async () => {
    const before = await cluster.query<{ n: number }>('SELECT count(*)::int AS n FROM commands');
    const unknown = await runCtl(['frobnicate'], { env: ctlEnv(cluster) });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown command 'frobnicate'");
    const unknownSub = await runCtl(['run', 'explode'], { env: ctlEnv(cluster) });
    expect(unknownSub.code).toBe(2);
    expect(unknownSub.stderr).toContain("unknown command 'explode'");

    const { SCHED_CLUSTER_SECRET: _, ...noSecret } = ctlEnv(cluster);
    const secretless = await runCtl(['workflow', 'trigger', 'ctl-hello'], { env: noSecret });
    expect(secretless.code).toBe(2);
    expect(secretless.stderr).toContain('cluster.secret');
    expect(secretless.stderr).toContain('SCHED_CLUSTER_SECRET');
    const wrongSecret = await runCtl(['workflow', 'trigger', 'ctl-hello'], {
      env: { ...ctlEnv(cluster), SCHED_CLUSTER_SECRET: 'not-the-secret-not-the-secret-not-the-secret' },
    });
    expect(wrongSecret.code).toBe(1);
    expect(wrongSecret.stderr).toContain('refused the cluster secret');

    const wrongZk = await runCtl(['workflow', 'trigger', 'ctl-hello', '--connect-timeout', '2s'], {
      env: { ...ctlEnv(cluster), SCHED_ZK: '127.0.0.1:1' },
    });
    expect(wrongZk.code).toBe(1);
    expect(wrongZk.stderr).toContain('could not connect to ZooKeeper at 127.0.0.1:1');
    expect(wrongZk.ms).toBeLessThan(15_000);
    const zkStatus = await runCtl(['cluster', 'status'], {
      env: { ...ctlEnv(cluster), SCHED_ZK: '127.0.0.1:1' },
    });
    expect(zkStatus.code).toBe(1);
    expect(zkStatus.stderr).toContain('could not connect to ZooKeeper');

    const noDb = await runCtl(['db', 'migrate'], {
      env: { ...ctlEnv(cluster), SCHED_DB_URL: 'postgres://sched:secret@127.0.0.1:1/nowhere' },
    });
    expect(noDb.code).toBe(1);
    expect(noDb.stderr).toContain('could not migrate PostgreSQL at postgres://sched:***@127.0.0.1:1/nowhere');

    const badConfig = await runCtl(['cluster', 'status', '--zk-session-timeout', 'soon'], {
      env: ctlEnv(cluster),
    });
    expect(badConfig.code).toBe(2);
    expect(badConfig.stderr).toContain('zk.sessionTimeout');

    for (const r of [unknown, unknownSub, secretless, wrongSecret, wrongZk, zkStatus, noDb, badConfig]) {
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    // Nothing was queued by any of the failed commands.
    expect(await cluster.query('SELECT count(*)::int AS n FROM commands')).toEqual(before);
  });

  test('task logs falls back to the stored log tail when the worker is gone', async () => {
    const run = shaped(runShowShape, await ctlJson(cluster, ['run', 'show', String(helloRun)]));
    const attemptId = run.tasks[0]?.attempts[0]?.id;
    await worker.child.stop(10_000);
    const logs = await runCtl(['task', 'logs', String(attemptId)], { env: ctlEnv(cluster) });
    expect(logs.code).toBe(0);
    expect(logs.stderr).toContain('showing the tail stored when it ended');
    expect(logs.stdout).toContain('hello bonjour from greet');
    const pool = createPool(cluster.dbUrl, { max: 1 });
    try {
      const { rows } = await pool.query('SELECT log_tail FROM task_attempts WHERE id = $1', [attemptId]);
      expect(rows[0]?.log_tail).toContain('hello bonjour from greet');
    } finally {
      await pool.end();
    }
  });

  test('a paused (SIGSTOP) leader is skipped: the next master answers within a bounded time', async () => {
    const status = shaped(clusterStatusShape, await ctlJson(cluster, ['cluster', 'status']));
    const leader = [master, master2].find((m) => m.address === status.masters.find((x) => x.leader)?.address);
    expect(leader).toBeDefined();
    leader?.child.pause();
    try {
      const r = await runCtl(['run', 'list', '--json', '--limit', '1'], { env: ctlEnv(cluster) });
      expect(r.code, r.stderr).toBe(0);
      expect(shaped(runListShape, JSON.parse(r.stdout))).toHaveLength(1);
      expect(r.ms).toBeLessThan(20_000);
    } finally {
      leader?.child.resume();
    }
  });
});
