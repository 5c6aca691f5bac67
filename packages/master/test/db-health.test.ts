// The step-out rule of DbHealth, with a fake clock and a database stand-in whose probe answers or
// fails on demand (the rule is about time and the other masters' word; the real thing is
// exercised against PostgreSQL in test/e2e/db-step-out.test.ts).
import { createLogger, FakeClock } from '@sched/core';
import { describe, expect, test } from 'vitest';
import { DbHealth } from '../src/db-health.js';

function setup(stepOutAfterMs = 30_000) {
  const clock = new FakeClock();
  const state = { dbUp: true, othersUp: false, stepOuts: [] as number[] };
  const health = new DbHealth({
    pool: {
      query: () => (state.dbUp ? Promise.resolve({ rows: [] }) : Promise.reject(new Error('ECONNREFUSED'))),
    } as never,
    stepOutAfterMs,
    anotherMasterReachesDb: () => state.othersUp,
    onStepOut: (ms) => state.stepOuts.push(ms),
    logger: createLogger({ level: 'silent' }),
    clock,
  });
  /** One probe per second for `seconds`. */
  const probeFor = async (seconds: number) => {
    for (let i = 0; i < seconds; i++) {
      await health.probe();
      clock.advance(1000);
    }
  };
  return { clock, state, health, probeFor };
}

describe('DbHealth step-out', () => {
  test('cut while another master reaches PostgreSQL: steps out after stepOutAfter, once', async () => {
    const { state, health, probeFor } = setup();
    state.othersUp = true;
    state.dbUp = false;
    await probeFor(30);
    expect(state.stepOuts).toEqual([]);
    expect(health.up).toBe(false);
    await probeFor(5);
    expect(state.stepOuts).toHaveLength(1);
    expect(state.stepOuts[0]).toBeGreaterThanOrEqual(30_000);
  });

  test('everyone down: nobody steps out, however long', async () => {
    const { state, probeFor } = setup();
    state.dbUp = false;
    await probeFor(120);
    expect(state.stepOuts).toEqual([]);
  });

  test('after an outage of everyone, a master that recovers a little later than the others does not step out', async () => {
    const { state, health, probeFor } = setup();
    state.dbUp = false;
    await probeFor(40); // PostgreSQL gone for everyone for 40 s
    state.othersUp = true; // another master's probe answers first
    await probeFor(3); // this one's answers 3 s later
    state.dbUp = true;
    await probeFor(1);
    expect(state.stepOuts).toEqual([]);
    expect(health.up).toBe(true);
    // It still steps out when the others have been up for stepOutAfter while it was not.
    state.dbUp = false;
    await probeFor(29);
    expect(state.stepOuts).toEqual([]);
    await probeFor(3);
    expect(state.stepOuts).toHaveLength(1);
  });

  test('0 means never', async () => {
    const { state, probeFor } = setup(0);
    state.othersUp = true;
    state.dbUp = false;
    await probeFor(300);
    expect(state.stepOuts).toEqual([]);
  });
});
