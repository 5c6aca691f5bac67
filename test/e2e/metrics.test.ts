// Metrics and probes: `/metrics` on masters exposes the trigger lag histogram, runs and attempts
// by state, dispatch latency, failovers, the leader gauge and the registry session state (scraped
// over HTTP from real daemons and parsed); `/healthz` and `/readyz` are public, `/readyz` turns
// 503 while PostgreSQL does not answer; the REST API itself needs the secret.
import { eventually, FaultProxy, registerCleanup } from '@sched/testkit';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { checkedFetch } from './api-contract.js';
import { type DaemonHandle, TestCluster } from './cluster.js';
import { type Exposition, parseExposition, value } from './metrics-text.js';

let cluster: TestCluster;
let m1: DaemonHandle;
let m2: DaemonHandle;
let dbProxy: FaultProxy;

beforeAll(async () => {
  cluster = await TestCluster.create();
  const db = new URL(cluster.dbUrl);
  dbProxy = await FaultProxy.start({ host: db.hostname, port: Number(db.port) });
  registerCleanup('db proxy', () => dbProxy.close());
  m1 = await cluster.startMaster();
  // The second master reaches PostgreSQL through a fault proxy (for /readyz).
  const proxied = new URL(cluster.dbUrl);
  proxied.port = String(dbProxy.port);
  m2 = await cluster.startMaster({ SCHED_DB_URL: proxied.toString() });
  await cluster.startWorker();
});

afterAll(async () => {
  await cluster?.stop();
});

/** GET, with the answer checked against the OpenAPI document (api-contract.ts). */
async function get(address: string, path: string, auth = false) {
  const { res, text } = await checkedFetch(`http://${address}${path}`, {
    headers: auth ? { Authorization: `Bearer ${cluster.secret}` } : {},
    signal: AbortSignal.timeout(10_000),
  });
  return { status: res.status, type: res.headers.get('content-type') ?? '', text };
}

async function scrape(address: string): Promise<Exposition> {
  const r = await get(address, '/metrics');
  expect(r.status).toBe(200);
  expect(r.type).toContain('text/plain');
  return parseExposition(r.text);
}

describe('master metrics and probes', () => {
  test('/metrics exposes every documented metric with the right type', async () => {
    await cluster.apply({
      name: 'every-second',
      schedule: { cron: '* * * * * ?', misfire: 'skip' },
      tasks: [{ name: 'tick', type: 'shell', command: 'true' }],
    });
    // Wait for some scheduled runs to finish (their tasks were dispatched to the worker).
    await eventually(
      async () => {
        const rows = await cluster.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM runs WHERE state = 'succeeded' AND trigger = 'schedule'`,
        );
        if ((rows[0]?.n ?? 0) < 3) throw new Error(`succeeded scheduled runs: ${rows[0]?.n}`);
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    await cluster.query(`UPDATE schedules SET paused = true`);
    const [e1, e2] = await Promise.all([scrape(m1.address), scrape(m2.address)]);
    for (const [e, name] of [
      [e1, 'sched_trigger_lag_seconds'],
      [e1, 'sched_dispatch_duration_seconds'],
    ] as const) {
      expect(e.types.get(name)).toBe('histogram');
    }
    expect(e1.types.get('sched_runs')).toBe('gauge');
    expect(e1.types.get('sched_task_attempts')).toBe('gauge');
    expect(e1.types.get('sched_failovers_total')).toBe('counter');
    expect(e1.types.get('sched_master_leader')).toBe('gauge');
    expect(e1.types.get('sched_registry_session_state')).toBe('gauge');

    // Active runs and attempts by state are cluster-wide counts from PostgreSQL; with the schedule
    // paused they drain to zero on both masters.
    await eventually(
      async () => {
        for (const m of [m1, m2]) {
          const e = await scrape(m.address);
          for (const [name, state] of [
            ['sched_runs', 'pending'],
            ['sched_runs', 'running'],
            ['sched_task_attempts', 'pending'],
            ['sched_task_attempts', 'dispatched'],
            ['sched_task_attempts', 'running'],
          ] as const) {
            const v = value(e, name, { state });
            if (v !== 0) throw new Error(`${name}{state=${state}} on ${m.name} is ${v}`);
          }
        }
      },
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    const [d1, d2] = await Promise.all([scrape(m1.address), scrape(m2.address)]);
    // Ended runs are counted by the master whose driver ended them: the sum is every run ended.
    const ended = await cluster.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM runs WHERE state = 'succeeded'`,
    );
    expect(
      (value(d1, 'sched_runs_ended_total', { state: 'succeeded' }) ?? 0) +
        (value(d2, 'sched_runs_ended_total', { state: 'succeeded' }) ?? 0),
    ).toBe(ended[0]?.n);
    expect(ended[0]?.n).toBeGreaterThanOrEqual(3);
    expect(value(d1, 'sched_runs_ended_total', { state: 'failed' })).toBe(0);
    expect(d1.types.get('sched_runs_ended_total')).toBe('counter');

    // Fires and dispatches happen on whichever master owns the slot / the run: sum both.
    const both = (name: string, labels: Record<string, string> = {}) =>
      (value(e1, name, labels) ?? 0) + (value(e2, name, labels) ?? 0);
    expect(both('sched_trigger_lag_seconds_count')).toBeGreaterThanOrEqual(3);
    // Lag of a healthy cluster: well under the 60 s bucket for every fire.
    expect(both('sched_trigger_lag_seconds_bucket', { le: '60' })).toBe(
      both('sched_trigger_lag_seconds_count'),
    );
    expect(both('sched_dispatch_duration_seconds_count', { outcome: 'ok' })).toBeGreaterThanOrEqual(3);

    // Exactly one leader; both sessions connected.
    expect((value(e1, 'sched_master_leader') ?? 0) + (value(e2, 'sched_master_leader') ?? 0)).toBe(1);
    for (const e of [e1, e2]) {
      expect(value(e, 'sched_registry_session_state', { state: 'CONNECTED' })).toBe(1);
      expect(value(e, 'sched_registry_session_state', { state: 'LOST' })).toBe(0);
      expect(value(e, 'sched_failovers_total', { role: 'worker' })).toBe(0);
      expect(value(e, 'sched_failovers_total', { role: 'master' })).toBe(0);
    }
  });

  test('probes are public, the API is not', async () => {
    expect((await get(m1.address, '/healthz')).status).toBe(200);
    const ready = await get(m1.address, '/readyz');
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.text)).toMatchObject({ ready: true, lease: true, db: true });
    const api = await get(m1.address, '/v1/runs');
    expect(api.status).toBe(401);
    expect(JSON.parse(api.text).error.code).toBe('UNAUTHENTICATED');
    expect((await get(m1.address, '/v1/runs', true)).status).toBe(200);
    // Any master answers cluster status, read from ZooKeeper.
    const status = JSON.parse((await get(m2.address, '/v1/cluster', true)).text);
    expect(status.masters.map((m: { address: string }) => m.address).sort()).toEqual(
      [m1.address, m2.address].sort(),
    );
    expect(status.masters.filter((m: { leader: boolean }) => m.leader)).toHaveLength(1);
    expect(status.answeredBy).toBe(m2.key);
  });

  test('the API answers bad input with the documented errors', async () => {
    const post = async (path: string, body: unknown) => {
      const { res, text } = await checkedFetch(`http://${m1.address}${path}`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${cluster.secret}`, 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(10_000),
      });
      return {
        status: res.status,
        body: JSON.parse(text) as { error: { code: string; issues?: unknown[] } },
      };
    };
    const invalid = await post('/v1/workflows', {
      definitions: [{ name: 'Bad Name', tasks: [{ name: 't', type: 'teleport' }] }],
    });
    expect(invalid.status).toBe(422);
    expect(invalid.body.error.code).toBe('DEFINITION_INVALID');
    expect(invalid.body.error.issues?.length).toBeGreaterThanOrEqual(2);
    const names = await cluster.query<{ name: string }>(`SELECT name FROM workflows ORDER BY name`);
    expect(names.map((r) => r.name)).toEqual(['every-second']);
    const badParams = await post('/v1/workflows/every-second/trigger', { params: { N: 5 } });
    expect(badParams.status).toBe(400);
    expect(badParams.body.error).toMatchObject({ code: 'REQUEST_INVALID', issues: [{ path: 'params.N' }] });
    const noRun = await get(m1.address, '/v1/runs/424242', true);
    expect(noRun.status).toBe(404);
    const badId = await get(m1.address, '/v1/runs/abc', true);
    expect(badId.status).toBe(400);
    expect((await post('/v1/runs', {})).status).toBe(405);
  });

  test('/readyz is 503 while PostgreSQL does not answer, and 200 again after', async () => {
    expect((await get(m2.address, '/readyz')).status).toBe(200);
    dbProxy.setMode('blackhole');
    try {
      const r = await get(m2.address, '/readyz');
      expect(r.status).toBe(503);
      const body = JSON.parse(r.text);
      expect(body).toMatchObject({ ready: false, lease: true, db: false });
      expect(body.reasons.join(' ')).toContain('PostgreSQL does not answer');
      // Liveness does not depend on the database.
      expect((await get(m2.address, '/healthz')).status).toBe(200);
      // A scrape does not hang either: the database series are left out.
      const e = await scrape(m2.address);
      expect(value(e, 'sched_runs', { state: 'running' })).toBeUndefined();
      expect(value(e, 'sched_registry_session_state', { state: 'CONNECTED' })).toBe(1);
    } finally {
      dbProxy.setMode('pass');
    }
    await eventually(
      async () => {
        const r = await get(m2.address, '/readyz');
        if (r.status !== 200) throw new Error(`readyz ${r.status}: ${r.text}`);
      },
      { timeoutMs: 30_000, intervalMs: 500 },
    );
  });

  test('sched_failovers_total counts a worker failed over by the leader', async () => {
    const doomed = await cluster.startWorker();
    await doomed.child.kill9();
    const leader = await eventually(
      async () => {
        for (const m of [m1, m2]) {
          const e = await scrape(m.address);
          if (value(e, 'sched_master_leader') === 1) {
            const n = value(e, 'sched_failovers_total', { role: 'worker' });
            if (n !== 1) throw new Error(`failovers_total{role=worker} on the leader: ${n}`);
            return m;
          }
        }
        throw new Error('no leader');
      },
      { timeoutMs: 45_000, intervalMs: 1_000 },
    ).catch((err) => {
      throw new Error(`${(err as Error).message}\n${cluster.output()}`);
    });
    const follower = leader === m1 ? m2 : m1;
    expect(value(await scrape(follower.address), 'sched_failovers_total', { role: 'worker' })).toBe(0);
  }, 90_000);
});
