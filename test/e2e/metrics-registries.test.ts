// The metric registries in process, with fakes of the narrow node shapes: worker gauges follow the
// executor and session, trigger lag and dispatch timing are observed as documented.
import { MasterMetrics, type MasterMetricsNode, type WorkerClient } from '@sched/master';
import type { SessionStatusKind } from '@sched/registry';
import { registerWorkerMetrics, type WorkerMetricsNode } from '@sched/worker';
import { describe, expect, test } from 'vitest';
import { parseExposition, value } from './metrics-text.js';

describe('worker metrics', () => {
  test('running, capacity and session state are read at scrape time', async () => {
    const node = {
      executor: { running: 2, capacity: 8 },
      session: { status: { kind: 'CONNECTED' as SessionStatusKind } },
    } satisfies WorkerMetricsNode;
    const m = registerWorkerMetrics(node, { defaultMetrics: false });
    let e = parseExposition(await m.registry.metrics());
    expect(value(e, 'sched_worker_running_tasks')).toBe(2);
    expect(value(e, 'sched_worker_capacity')).toBe(8);
    expect(value(e, 'sched_registry_session_state', { state: 'CONNECTED' })).toBe(1);
    node.executor.running = 5;
    node.session.status.kind = 'SUSPENDED';
    e = parseExposition(await m.registry.metrics());
    expect(value(e, 'sched_worker_running_tasks')).toBe(5);
    expect(value(e, 'sched_registry_session_state', { state: 'CONNECTED' })).toBe(0);
    expect(value(e, 'sched_registry_session_state', { state: 'SUSPENDED' })).toBe(1);
  });
});

describe('master metrics', () => {
  const node: MasterMetricsNode = { pool: undefined, isLeader: true, session: undefined };

  test('trigger lag is committed − fire time; failovers count by role', async () => {
    const m = new MasterMetrics(node, { defaultMetrics: false });
    m.observeFiredRuns([
      { fireTimeMs: 1_000, committedAtMs: 1_020 },
      { fireTimeMs: 2_000, committedAtMs: 4_000 },
    ]);
    m.recordFailover('worker');
    const e = parseExposition(await m.registry.metrics());
    expect(value(e, 'sched_trigger_lag_seconds_count')).toBe(2);
    expect(value(e, 'sched_trigger_lag_seconds_sum')).toBeCloseTo(2.02, 5);
    expect(value(e, 'sched_trigger_lag_seconds_bucket', { le: '0.025' })).toBe(1);
    expect(value(e, 'sched_trigger_lag_seconds_bucket', { le: '2.5' })).toBe(2);
    expect(value(e, 'sched_failovers_total', { role: 'worker' })).toBe(1);
    expect(value(e, 'sched_failovers_total', { role: 'master' })).toBe(0);
    expect(value(e, 'sched_master_leader')).toBe(1);
    expect(value(e, 'sched_registry_session_state', { state: 'CONNECTING' })).toBe(1);
  });

  test('fire-to-start is observed per scheduled run, in seconds', async () => {
    const m = new MasterMetrics(node, { defaultMetrics: false });
    m.observeFireToStart([12, 40, 1_500]);
    const e = parseExposition(await m.registry.metrics());
    expect(value(e, 'sched_fire_to_start_seconds_count')).toBe(3);
    expect(value(e, 'sched_fire_to_start_seconds_sum')).toBeCloseTo(1.552, 5);
    expect(value(e, 'sched_fire_to_start_seconds_bucket', { le: '0.025' })).toBe(1);
    expect(value(e, 'sched_fire_to_start_seconds_bucket', { le: '0.05' })).toBe(2);
    expect(value(e, 'sched_fire_to_start_seconds_bucket', { le: '2' })).toBe(3);
  });

  test('dispatch calls are timed by outcome; the wrapped client still works', async () => {
    const m = new MasterMetrics(node, { defaultMetrics: false });
    let closed = false;
    const fake: WorkerClient = {
      dispatch: async (address: string) => {
        if (address === 'down:1') throw new Error('ECONNREFUSED');
        return address === 'full:1'
          ? [{ attemptId: '1', outcome: 'refused' as const, code: 'AT_CAPACITY', message: 'full' }]
          : [{ attemptId: '1', outcome: 'accepted' as const }];
      },
      cancel: async () => true,
      revoke: async () => new Map(),
      close: () => {
        closed = true;
      },
    };
    const client = m.instrumentClient(fake);
    await client.dispatch('ok:1', []);
    await client.dispatch('full:1', []);
    await expect(client.dispatch('down:1', [])).rejects.toThrow('ECONNREFUSED');
    client.close();
    expect(closed).toBe(true);
    const e = parseExposition(await m.registry.metrics());
    for (const outcome of ['ok', 'refused', 'unreachable']) {
      expect(value(e, 'sched_dispatch_duration_seconds_count', { outcome })).toBe(1);
    }
  });
});
