// Unit tests of the chaos checker and the task-log parser: each check must fail on the
// violation it exists for and pass on a clean history.
import {
  type CheckInput,
  checkAttemptsExecutedOnce,
  checkDuplicateFires,
  checkLogWellFormed,
  checkLostFires,
  checkManualTriggers,
  checkNoRunFailed,
  checkOverlaps,
  checkSucceededConfirmed,
  checkTerminal,
  type Execution,
  parseTaskLog,
  SeededRandom,
} from '@sched/chaos';
import { describe, expect, test } from 'vitest';

const t0 = Date.UTC(2026, 10, 21, 8, 0, 0);

function input(over: Partial<CheckInput> = {}): CheckInput {
  return {
    windowStartMs: t0,
    windowEndMs: t0 + 4000,
    schedules: [],
    runs: [],
    attempts: [],
    executions: [],
    malformedLogLines: [],
    triggerCommandIds: [],
    ...over,
  };
}

function fires(seconds: number[], trigger = 'schedule') {
  return seconds.map((s, i) => ({ fireTimeMs: t0 + s * 1000, trigger, runId: 100 + i }));
}

function exec(over: Partial<Execution>): Execution {
  return {
    runId: 1,
    task: 'work',
    attempt: 1,
    node: 'worker-1.1',
    pid: 10,
    startMs: t0,
    lastSeenMs: t0 + 1000,
    ended: true,
    orphanLines: 0,
    ...over,
  };
}

describe('lost fires', () => {
  test('fire-all: every second of the window needs a run', () => {
    const ok = checkLostFires(
      input({
        schedules: [
          { scheduleId: 1, workflow: 'a', misfire: 'fire-all', periodMs: 1000, runs: fires([0, 1, 2, 3, 4]) },
        ],
      }),
    );
    expect(ok.passed).toBe(true);
    const lost = checkLostFires(
      input({
        schedules: [
          { scheduleId: 1, workflow: 'a', misfire: 'fire-all', periodMs: 1000, runs: fires([0, 1, 3, 4]) },
        ],
      }),
    );
    expect(lost.passed).toBe(false);
    expect(lost.violations).toHaveLength(1);
    expect(lost.violations[0]).toContain('08:00:02.000Z');
  });

  test('fire-once-now: a gap is excused only when it ends in a misfire run', () => {
    const excused = checkLostFires(
      input({
        schedules: [
          {
            scheduleId: 1,
            workflow: 'c',
            misfire: 'fire-once-now',
            periodMs: 1000,
            runs: [...fires([0, 1]), ...fires([4], 'misfire')],
          },
        ],
      }),
    );
    expect(excused.passed).toBe(true);
    expect(excused.examined).toContain('2 excused');
    const lost = checkLostFires(
      input({
        schedules: [
          { scheduleId: 1, workflow: 'c', misfire: 'fire-once-now', periodMs: 1000, runs: fires([0, 1, 4]) },
        ],
      }),
    );
    expect(lost.violations).toHaveLength(2);
  });

  test('fire times outside the window are not expected', () => {
    const r = checkLostFires(
      input({
        schedules: [
          { scheduleId: 1, workflow: 'a', misfire: 'fire-all', periodMs: 1000, runs: fires([0, 1, 2, 3, 4]) },
        ],
        windowStartMs: t0 - 500,
      }),
    );
    expect(r.passed).toBe(true);
  });
});

test('duplicate fires', () => {
  const runs = [...fires([0, 1]), { fireTimeMs: t0 + 1000, trigger: 'misfire', runId: 7 }];
  const r = checkDuplicateFires(
    input({ schedules: [{ scheduleId: 1, workflow: 'a', misfire: 'fire-all', periodMs: 1000, runs }] }),
  );
  expect(r.violations).toEqual([expect.stringContaining('has 2 runs (101, 7)')]);
  expect(
    checkDuplicateFires(
      input({
        schedules: [
          { scheduleId: 1, workflow: 'a', misfire: 'fire-all', periodMs: 1000, runs: fires([0, 1]) },
        ],
      }),
    ).passed,
  ).toBe(true);
});

test('manual triggers: exactly one run per command', () => {
  const run = (id: number, commandId: number | null) => ({
    id,
    workflow: 'w',
    state: 'succeeded',
    trigger: 'manual',
    commandId,
  });
  const r = checkManualTriggers(
    input({ triggerCommandIds: [1, 2, 3], runs: [run(10, 1), run(11, 2), run(12, 2), run(13, null)] }),
  );
  expect(r.violations).toEqual([
    'trigger command 2 produced 2 runs (11, 12)',
    'trigger command 3 produced no run',
  ]);
});

describe('overlapping executions', () => {
  test('a killed attempt last seen after its re-run started overlaps it', () => {
    const r = checkOverlaps(
      input({
        executions: [
          exec({ attempt: 1, startMs: t0, lastSeenMs: t0 + 9000, ended: false }),
          exec({ attempt: 2, node: 'worker-2.1', pid: 20, startMs: t0 + 8000, lastSeenMs: t0 + 12_000 }),
        ],
      }),
    );
    expect(r.violations).toHaveLength(1);
    expect(r.violations[0]).toContain('by 1000 ms');
    expect(r.violations[0]).toContain('never ended');
  });

  test('sequential attempts and other tasks or runs do not overlap', () => {
    const r = checkOverlaps(
      input({
        executions: [
          exec({ attempt: 1, startMs: t0, lastSeenMs: t0 + 5000, ended: false }),
          exec({ attempt: 2, pid: 20, startMs: t0 + 5001, lastSeenMs: t0 + 7000 }),
          exec({ task: 'after', pid: 30, startMs: t0 + 1000, lastSeenMs: t0 + 2000 }),
          exec({ runId: 2, pid: 40, startMs: t0 + 1000, lastSeenMs: t0 + 2000 }),
        ],
      }),
    );
    expect(r.passed).toBe(true);
  });
});

test('attempts executed once', () => {
  const r = checkAttemptsExecutedOnce(
    input({
      executions: [exec({ pid: 1, startMs: t0 }), exec({ pid: 2, node: 'worker-2.1', startMs: t0 + 20_000 })],
    }),
  );
  expect(r.violations).toEqual([expect.stringContaining('1/work#1 was executed 2 times')]);
});

test('runs not terminal', () => {
  const r = checkTerminal(
    input({
      runs: [
        { id: 1, workflow: 'w', state: 'succeeded', trigger: 'schedule', commandId: null },
        { id: 2, workflow: 'w', state: 'running', trigger: 'schedule', commandId: null },
      ],
      attempts: [
        { runId: 1, task: 'work', attempt: 1, shardIndex: 0, state: 'failed-over', workerKey: 'k' },
        { runId: 2, task: 'work', attempt: 1, shardIndex: 0, state: 'dispatched', workerKey: 'k2' },
      ],
    }),
  );
  expect(r.violations).toEqual(['run 2 (w, schedule) is running', 'attempt 2/work#1 is dispatched on k2']);
});

test('succeeded attempts must have finished in the task log', () => {
  const attempts = [
    { runId: 1, task: 'work', attempt: 1, shardIndex: 0, state: 'succeeded', workerKey: 'k' },
    { runId: 1, task: 'work', attempt: 2, shardIndex: 0, state: 'succeeded', workerKey: 'k' },
  ];
  const r = checkSucceededConfirmed(
    input({ attempts, executions: [exec({}), exec({ attempt: 2, ended: false })] }),
  );
  expect(r.violations).toEqual([
    'attempt 1/work#2 is succeeded in the database but never finished in the task log',
  ]);
});

describe('task log', () => {
  const ns = (ms: number) => `${BigInt(ms) * 1_000_000n}`;
  test('start, ticks and end of one shell make one execution; a killed one has no end', () => {
    const text = [
      `start 5 work 1 worker-1.1 100 ${ns(t0)}`,
      `start 5 work 2 worker-2.1 200 ${ns(t0 + 8000)}`,
      `tick 5 work 1 worker-1.1 100 ${ns(t0 + 500)}`,
      `tick 5 work 1 worker-1.1 100 ${ns(t0 + 1000)}`,
      `end 5 work 2 worker-2.1 200 ${ns(t0 + 9000)}`,
      'garbage line',
      '',
    ].join('\n');
    const parsed = parseTaskLog(text);
    expect(parsed.malformed).toEqual(['garbage line']);
    expect(parsed.executions).toHaveLength(2);
    expect(parsed.executions[0]).toMatchObject({
      runId: 5,
      attempt: 1,
      startMs: t0,
      lastSeenMs: t0 + 1000,
      ended: false,
    });
    expect(parsed.executions[1]).toMatchObject({
      attempt: 2,
      startMs: t0 + 8000,
      lastSeenMs: t0 + 9000,
      ended: true,
    });
  });

  test('lines without a start line are reported', () => {
    const parsed = parseTaskLog(`tick 5 work 1 worker-1.1 100 ${ns(t0)}\n`);
    expect(checkLogWellFormed(input({ executions: parsed.executions })).passed).toBe(false);
  });
});

test('SeededRandom repeats its sequence for one seed', () => {
  const a = new SeededRandom(42);
  const b = new SeededRandom(42);
  const xs = Array.from({ length: 20 }, () => a.int(0, 1000));
  expect(Array.from({ length: 20 }, () => b.int(0, 1000))).toEqual(xs);
  expect(new Set(xs).size).toBeGreaterThan(10);
  expect(xs.every((x) => x >= 0 && x <= 1000)).toBe(true);
});

test('runs failed: a failed or cancelled run is reported with its unsuccessful attempts', () => {
  const r = checkNoRunFailed(
    input({
      runs: [
        { id: 1, workflow: 'w', state: 'succeeded', trigger: 'schedule', commandId: null },
        { id: 2, workflow: 'w', state: 'failed', trigger: 'schedule', commandId: null },
      ],
      attempts: [
        { runId: 1, task: 'work', attempt: 1, shardIndex: 0, state: 'succeeded', workerKey: 'k' },
        { runId: 2, task: 'work', attempt: 1, shardIndex: 0, state: 'killed', workerKey: 'k2' },
      ],
    }),
  );
  expect(r.violations).toEqual(['run 2 (w, schedule) failed: work#1 killed on k2']);
});
