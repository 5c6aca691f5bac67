import { readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FakeClock } from '@sched/core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { TaskExecutor } from '../src/executor/task-executor.js';
import { LogStore } from '../src/logs/log-store.js';
import { attemptRequest, tempDir } from './helpers.js';

let dir: Awaited<ReturnType<typeof tempDir>>;
beforeAll(async () => {
  dir = await tempDir('logs');
});
afterAll(async () => {
  await dir.remove();
});

describe('attempt log file', () => {
  test('is capped in size with a marker, while the tail keeps the last bytes of all output', () => {
    const store = new LogStore({ dir: join(dir.path, 'cap'), maxBytesPerAttempt: 100, tailBytes: 30 });
    const log = store.open('cap-1');
    for (let i = 0; i < 50; i++) log.write(Buffer.from(`line ${String(i).padStart(2, '0')}\n`));
    log.close();
    const file = readFileSync(store.pathFor('cap-1'), 'utf8');
    expect(file.startsWith('line 00\nline 01\n')).toBe(true);
    expect(file).toContain('[sched] log capped at 100 bytes');
    expect(file).not.toContain('line 49');
    expect(log.truncated).toBe(true);
    expect(log.totalBytes).toBe(50 * 8);
    const all = Array.from({ length: 50 }, (_, i) => `line ${String(i).padStart(2, '0')}\n`).join('');
    expect(log.tail()).toBe(all.slice(-30));
    expect(log.tail()).toHaveLength(30);
  });

  test('attempt ids that are not safe file names are refused', () => {
    const store = new LogStore({ dir: join(dir.path, 'safe') });
    expect(() => store.pathFor('../../etc/passwd')).toThrow(
      expect.objectContaining({ code: 'ATTEMPT_ID_INVALID' }),
    );
  });
});

describe('following a running attempt', () => {
  test('yields output live, before the task finishes, and ends when it finishes', async () => {
    const logs = new LogStore({ dir: join(dir.path, 'follow') });
    const ex = new TaskExecutor({ capacity: 2, killGraceMs: 200, logs, workDir: join(dir.path, 'work') });
    const gate = join(dir.path, 'gate');
    // The task prints, then waits for the test to open the gate: output must be seen while it runs.
    const req = attemptRequest({
      type: 'shell',
      command: `echo first; while [ ! -e "${gate}" ]; do sleep 0.05; done; echo second`,
    });
    ex.submit(req);
    const seen: string[] = [];
    let finishedBeforeEnd = false;
    const follower = (async () => {
      for await (const chunk of logs.follow(req.attemptId)) {
        seen.push(chunk.toString());
        if (seen.join('').includes('first') && !seen.join('').includes('second')) {
          expect(ex.snapshot(req.attemptId)?.state).toBe('running');
          writeFileSync(gate, '');
        }
      }
      finishedBeforeEnd = ex.snapshot(req.attemptId)?.state === 'succeeded';
    })();
    await follower;
    const text = seen.join('');
    expect(text).toMatch(/first\n[\s\S]*second\n[\s\S]*attempt succeeded/);
    expect(finishedBeforeEnd).toBe(true);
    expect(text).toBe(readFileSync(logs.pathFor(req.attemptId), 'utf8'));
  });

  test('from an offset, of a finished attempt, reads the rest and ends; an unknown attempt is NOT_FOUND', async () => {
    const store = new LogStore({ dir: join(dir.path, 'offset') });
    const log = store.open('done-1');
    log.write(Buffer.from('0123456789'));
    log.close();
    const chunks: string[] = [];
    for await (const c of store.follow('done-1', { offset: 4 })) chunks.push(c.toString());
    expect(chunks.join('')).toBe('456789');
    await expect(store.follow('nope').next()).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  test('stops when aborted while waiting for output', async () => {
    const store = new LogStore({ dir: join(dir.path, 'abort') });
    const log = store.open('live-1');
    log.write(Buffer.from('x'));
    const ac = new AbortController();
    const chunks: string[] = [];
    const t0 = performance.now();
    setTimeout(() => ac.abort(), 100);
    for await (const c of store.follow('live-1', { signal: ac.signal })) chunks.push(c.toString());
    expect(chunks).toEqual(['x']);
    expect(performance.now() - t0).toBeLessThan(900);
    log.close();
  });
});

describe('retention', () => {
  test('purge removes finished logs older than the retention, keeps newer and running ones', async () => {
    const clock = new FakeClock({ now: Date.now() });
    const store = new LogStore({ dir: join(dir.path, 'purge'), retentionMs: 3_600_000, clock });
    for (const id of ['old', 'new', 'running']) {
      const log = store.open(id);
      log.write(Buffer.from(id));
      if (id !== 'running') log.close();
    }
    const twoHoursAgo = (Date.now() - 7_200_000) / 1000;
    utimesSync(store.pathFor('old'), twoHoursAgo, twoHoursAgo);
    utimesSync(store.pathFor('running'), twoHoursAgo, twoHoursAgo);
    expect(await store.purge()).toBe(1);
    expect(() => readFileSync(store.pathFor('old'))).toThrow(/ENOENT/);
    expect(readFileSync(store.pathFor('new'), 'utf8')).toBe('new');
    expect(readFileSync(store.pathFor('running'), 'utf8')).toBe('running');
    clock.advance(2 * 3_600_000);
    expect(await store.purge()).toBe(1); // 'new' is now past retention; 'running' still open
  });
});
