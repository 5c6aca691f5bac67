import { FakeClock } from '@sched/core';
import { describe, expect, test } from 'vitest';
import { hash32 } from '../src/routing/consistent-hash.js';
import { loadScore } from '../src/routing/load-aware-strategies.js';
import { parseRoutingStrategy, ROUTING_STRATEGIES } from '../src/routing/routing-strategy.js';
import { type RoutePlan, type RouteRequest, WorkerRouter } from '../src/routing/worker-router.js';
import type { WorkerView } from '../src/routing/worker-view.js';

function worker(n: number, extra: Partial<WorkerView> = {}): WorkerView {
  const address = `10.0.0.${n}:5678`;
  return {
    key: `${address}_1700000000000`,
    address,
    startTime: 1_700_000_000_000,
    groups: ['default'],
    weight: 1,
    capacity: 10,
    running: 0,
    state: 'NORMAL',
    cpu: 0.1,
    memory: 0.1,
    load: 0.1,
    ...extra,
  };
}

/** A deterministic random source (mulberry32), so random-dependent tests are repeatable. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const req = (strategy: RouteRequest['strategy'], extra: Partial<RouteRequest> = {}): RouteRequest => ({
  strategy,
  group: 'default',
  scope: 'wf/task',
  ...extra,
});

function ordered(plan: RoutePlan): string[] {
  if (plan.mode !== 'ordered') throw new Error(`expected an ordered plan, got ${plan.mode}`);
  return plan.targets.map((t) => t.address);
}
const first = (plan: RoutePlan): string => ordered(plan)[0] ?? '(none)';
const A = '10.0.0.1:5678';
const B = '10.0.0.2:5678';
const C = '10.0.0.3:5678';
const D = '10.0.0.4:5678';

describe('candidate selection (every strategy)', () => {
  test('only workers of the group, BUSY and DRAINING skipped, stable order whatever the input order', () => {
    const router = new WorkerRouter({ random: seeded(1) });
    const workers = [
      worker(4),
      worker(3, { state: 'DRAINING' }),
      worker(2, { groups: ['gpu'] }),
      worker(1),
      worker(5, { state: 'BUSY' }),
    ];
    for (const strategy of ROUTING_STRATEGIES) {
      const plan = router.route(workers, req(strategy));
      const chosen =
        plan.mode === 'broadcast'
          ? plan.shards.map((s) => s.worker.address)
          : plan.targets.map((t) => t.address);
      expect(new Set(chosen), strategy).toEqual(new Set([A, D]));
    }
    expect(ordered(router.route(workers, req('first')))).toEqual([A, D]);
    expect(ordered(router.route([...workers].reverse(), req('first')))).toEqual([A, D]);
  });

  test('an empty candidate set says why', () => {
    const router = new WorkerRouter();
    expect(router.route([worker(1)], req('first', { group: 'gpu' }))).toMatchObject({
      targets: [],
      reason: 'no-worker-in-group',
    });
    expect(router.route([worker(1, { state: 'BUSY' })], req('round-robin'))).toMatchObject({
      targets: [],
      reason: 'no-worker-accepting',
    });
    expect(router.route([worker(1, { running: 10 })], req('busyover'))).toMatchObject({
      targets: [],
      reason: 'no-worker-with-free-capacity',
    });
    expect(router.route([], req('sharding-broadcast'))).toMatchObject({
      mode: 'broadcast',
      shards: [],
      reason: 'no-worker-in-group',
    });
  });

  test('strategy names are parsed with a clear error', () => {
    expect(parseRoutingStrategy('busyover')).toBe('busyover');
    expect(() => parseRoutingStrategy('roundrobin', 'tasks[0].routing')).toThrow(
      /tasks\[0\]\.routing: unknown routing strategy "roundrobin"; accepted: first, last, round-robin/,
    );
  });
});

describe('positional strategies', () => {
  const workers = [worker(3), worker(1), worker(2)];

  test('first picks the first in stable order, the rest follow as fallbacks', () => {
    const router = new WorkerRouter();
    expect(ordered(router.route(workers, req('first')))).toEqual([A, B, C]);
    expect(ordered(router.route(workers, req('first')))).toEqual([A, B, C]);
  });

  test('last picks the last, the rest backwards', () => {
    const router = new WorkerRouter();
    expect(ordered(router.route(workers, req('last')))).toEqual([C, B, A]);
  });

  test('round-robin cycles through every worker in order, per scope, from a random start', () => {
    const router = new WorkerRouter({ random: () => 0.5 }); // start = floor(0.5 * 3) = 1
    const picks = Array.from({ length: 6 }, () => first(router.route(workers, req('round-robin'))));
    expect(picks).toEqual([B, C, A, B, C, A]);
    // Fallbacks continue the cycle after the pick.
    expect(ordered(router.route(workers, req('round-robin')))).toEqual([B, C, A]);
    // Another scope has its own counter.
    expect(first(router.route(workers, req('round-robin', { scope: 'other' })))).toBe(B);
  });

  test('random is roughly uniform and returns every candidate once', () => {
    const router = new WorkerRouter({ random: seeded(42) });
    const counts = new Map<string, number>();
    for (let i = 0; i < 3000; i++) {
      const order = ordered(router.route(workers, req('random')));
      expect(new Set(order).size).toBe(3);
      counts.set(order[0] as string, (counts.get(order[0] as string) ?? 0) + 1);
    }
    for (const address of [A, B, C]) {
      expect(counts.get(address)).toBeGreaterThan(850);
      expect(counts.get(address)).toBeLessThan(1150);
    }
  });
});

describe('weighted-round-robin (smooth, nginx)', () => {
  test('weights 1:2:5 give the nginx sequence c b c a c c b c, repeating', () => {
    const router = new WorkerRouter();
    const workers = [worker(1, { weight: 1 }), worker(2, { weight: 2 }), worker(3, { weight: 5 })];
    const picks = Array.from({ length: 16 }, () => first(router.route(workers, req('weighted-round-robin'))));
    const nginx = [C, B, C, A, C, C, B, C];
    expect(picks).toEqual([...nginx, ...nginx]);
  });

  test('weights are read from each heartbeat: a changed weight changes the share', () => {
    const router = new WorkerRouter();
    const counts = new Map<string, number>();
    let workers = [worker(1, { weight: 1 }), worker(2, { weight: 1 }), worker(3, { weight: 1 })];
    for (let i = 0; i < 30; i++) first(router.route(workers, req('weighted-round-robin')));
    workers = [worker(1, { weight: 1 }), worker(2, { weight: 1 }), worker(3, { weight: 8 })];
    for (let i = 0; i < 100; i++) {
      const pick = first(router.route(workers, req('weighted-round-robin')));
      counts.set(pick, (counts.get(pick) ?? 0) + 1);
    }
    expect(counts.get(C)).toBe(80);
    expect(counts.get(A)).toBe(10);
    expect(counts.get(B)).toBe(10);
  });

  test('a weight-0 worker is only a last-resort fallback', () => {
    const router = new WorkerRouter();
    const workers = [worker(1, { weight: 0 }), worker(2, { weight: 1 }), worker(3, { weight: 1 })];
    for (let i = 0; i < 10; i++) {
      const order = ordered(router.route(workers, req('weighted-round-robin')));
      expect(order[0]).not.toBe(A);
      expect(order[2]).toBe(A);
    }
  });
});

describe('consistent-hash', () => {
  const keys = Array.from({ length: 2000 }, (_, i) => `workflow-${i}/task`);
  const placement = (router: WorkerRouter, workers: WorkerView[]) =>
    new Map(keys.map((k) => [k, first(router.route(workers, req('consistent-hash', { hashKey: k })))]));

  test('each key sticks to one worker, and keys spread over all workers', () => {
    const router = new WorkerRouter();
    const workers = [worker(1), worker(2), worker(3), worker(4)];
    const one = placement(router, workers);
    expect(placement(router, [...workers].reverse())).toEqual(one);
    const perWorker = new Map<string, number>();
    for (const w of one.values()) perWorker.set(w, (perWorker.get(w) ?? 0) + 1);
    expect(perWorker.size).toBe(4);
    for (const n of perWorker.values()) expect(n).toBeGreaterThan(2000 / 4 / 2);
  });

  test('when a worker leaves, only its keys move, and they move to where its fallback said', () => {
    const router = new WorkerRouter();
    const all = [worker(1), worker(2), worker(3), worker(4)];
    const before = placement(router, all);
    const fallbackOf = new Map(
      keys.map((k) => [k, ordered(router.route(all, req('consistent-hash', { hashKey: k })))[1]]),
    );
    const after = placement(
      router,
      all.filter((w) => w.address !== C),
    );
    let moved = 0;
    for (const k of keys) {
      if (before.get(k) === C) {
        moved++;
        expect(after.get(k)).toBe(fallbackOf.get(k));
      } else {
        expect(after.get(k), k).toBe(before.get(k));
      }
    }
    expect(moved).toBeGreaterThan(0);
  });

  test('a restarted worker (same address, new start time) gets its keys back', () => {
    const router = new WorkerRouter();
    const all = [worker(1), worker(2), worker(3)];
    const before = placement(router, all);
    const restarted = [
      worker(1),
      worker(2),
      worker(3, { key: `${C}_1800000000000`, startTime: 1_800_000_000_000 }),
    ];
    expect(placement(router, restarted)).toEqual(before);
  });

  test('the key defaults to the scope', () => {
    const router = new WorkerRouter();
    const workers = [worker(1), worker(2), worker(3)];
    expect(first(router.route(workers, req('consistent-hash', { scope: 'wf/x' })))).toBe(
      first(router.route(workers, req('consistent-hash', { scope: 'y', hashKey: 'wf/x' }))),
    );
    expect(hash32('abc')).toBe(0x90015098); // md5("abc") = 900150983cd24fb0…
  });
});

describe('usage strategies', () => {
  test('least-frequently-used picks the least chosen, so picks even out, and a new worker joins at the minimum', () => {
    const router = new WorkerRouter();
    const three = [worker(1), worker(2), worker(3)];
    const picks = Array.from({ length: 6 }, () => first(router.route(three, req('least-frequently-used'))));
    expect(picks).toEqual([A, B, C, A, B, C]);
    // D joins with count = current minimum (2): it does not take every task to catch up.
    const four = [...three, worker(4)];
    const next = Array.from({ length: 8 }, () => first(router.route(four, req('least-frequently-used'))));
    expect(next).toEqual([A, B, C, D, A, B, C, D]);
  });

  test('least-frequently-used counts per scope', () => {
    const router = new WorkerRouter();
    const three = [worker(1), worker(2), worker(3)];
    first(router.route(three, req('least-frequently-used', { scope: 's1' })));
    expect(first(router.route(three, req('least-frequently-used', { scope: 's2' })))).toBe(A);
    expect(first(router.route(three, req('least-frequently-used', { scope: 's1' })))).toBe(B);
  });

  test('least-recently-used picks the one chosen longest ago (never first), fallbacks by age', () => {
    const router = new WorkerRouter();
    const three = [worker(1), worker(2), worker(3)];
    expect(ordered(router.route(three, req('least-recently-used')))).toEqual([A, B, C]);
    expect(ordered(router.route(three, req('least-recently-used')))).toEqual([B, C, A]);
    // A worker that was unavailable for a while is least recently used when it comes back.
    expect(first(router.route([worker(1), worker(3)], req('least-recently-used')))).toBe(C);
    expect(first(router.route([worker(1), worker(3)], req('least-recently-used')))).toBe(A);
    expect(first(router.route(three, req('least-recently-used')))).toBe(B);
  });
});

describe('health and load strategies', () => {
  test('failover picks the first healthy worker; one that failed a dispatch goes last until its cooldown ends', () => {
    const clock = new FakeClock();
    const router = new WorkerRouter({ clock, failureCooldownMs: 10_000 });
    const three = [worker(1), worker(2), worker(3)];
    expect(ordered(router.route(three, req('failover')))).toEqual([A, B, C]);
    router.reportDispatchFailure(three[0]?.key as string);
    expect(ordered(router.route(three, req('failover')))).toEqual([B, C, A]);
    router.reportDispatchFailure(three[1]?.key as string);
    expect(ordered(router.route(three, req('failover')))).toEqual([C, A, B]);
    router.reportDispatchSuccess(three[1]?.key as string);
    expect(ordered(router.route(three, req('failover')))).toEqual([B, C, A]);
    clock.advance(10_000);
    expect(ordered(router.route(three, req('failover')))).toEqual([A, B, C]);
  });

  test('busyover skips a full worker and keeps the others in order', () => {
    const router = new WorkerRouter();
    const three = [worker(1, { running: 4, capacity: 4 }), worker(2, { running: 3, capacity: 4 }), worker(3)];
    expect(ordered(router.route(three, req('busyover')))).toEqual([B, C]);
    const allFreeAgain = [worker(1, { running: 3, capacity: 4 }), worker(2), worker(3)];
    expect(ordered(router.route(allFreeAgain, req('busyover')))).toEqual([A, B, C]);
  });

  test('lowest-load prefers the idle worker, then orders by load', () => {
    const router = new WorkerRouter();
    const busy = { running: 8, capacity: 10, cpu: 0.9, memory: 0.7, load: 1.5 };
    const medium = { running: 4, capacity: 10, cpu: 0.5, memory: 0.5, load: 0.5 };
    const idle = { running: 0, capacity: 10, cpu: 0.02, memory: 0.2, load: 0.01 };
    expect(
      ordered(router.route([worker(1, busy), worker(2, medium), worker(3, idle)], req('lowest-load'))),
    ).toEqual([C, B, A]);
    expect(
      ordered(router.route([worker(1, idle), worker(2, busy), worker(3, medium)], req('lowest-load'))),
    ).toEqual([A, C, B]);
    // Each input counts: a full task-slot table outweighs an idle CPU.
    expect(loadScore(worker(1, { running: 10, capacity: 10, cpu: 0 }))).toBeGreaterThan(
      loadScore(worker(2, { running: 0, capacity: 10, cpu: 1 })),
    );
  });
});

describe('sharding-broadcast', () => {
  test('every worker of the group gets one shard, index = position in stable order, total = count', () => {
    const router = new WorkerRouter();
    const workers = [
      worker(3),
      worker(1),
      worker(4, { groups: ['other'] }),
      worker(2),
      worker(5, { state: 'BUSY' }),
    ];
    const plan = router.route(workers, req('sharding-broadcast'));
    expect(plan.mode).toBe('broadcast');
    if (plan.mode !== 'broadcast') return;
    expect(plan.shards.map((s) => [s.worker.address, s.shardIndex, s.shardTotal])).toEqual([
      [A, 0, 3],
      [B, 1, 3],
      [C, 2, 3],
    ]);
  });
});
