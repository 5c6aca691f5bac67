import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { eventually, spawnProcess } from '@sched/testkit';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { TaskExecutor } from '../src/executor/task-executor.js';
import { type SupervisorKill, TaskSupervisor } from '../src/executor/task-supervisor.js';
import { LogStore } from '../src/logs/log-store.js';
import { attemptRequest, pidRuns, tempDir } from './helpers.js';

/**
 * The task supervisor kills task process groups when the worker daemon freezes (blocked event
 * loop, SIGSTOP) past its timeout, or dies (kill -9), so a task never outlives its worker's
 * session next to its re-run (docs/design.md#zombies: the worker's half of the frozen-worker case).
 */
const fixture = fileURLToPath(new URL('./fixtures/supervised-executor.mjs', import.meta.url));
const built = fileURLToPath(new URL('../dist/index.js', import.meta.url));
let dir: Awaited<ReturnType<typeof tempDir>>;

beforeAll(async () => {
  dir = await tempDir('supervisor');
});
afterAll(async () => {
  await dir.remove();
});

async function grandchildOf(child: ReturnType<typeof spawnProcess>): Promise<number> {
  return Number(/grandchild=(\d+)/.exec(await child.waitForOutput(/grandchild=\d+/, 20_000))?.[1]);
}

describe('TaskSupervisor', () => {
  test('the daemon side learns which process groups the supervisor killed, and after how much silence', async () => {
    const supervisor = await TaskSupervisor.start({ timeoutMs: 500 });
    const seen: SupervisorKill[] = [];
    supervisor.onKilled((kill) => seen.push(kill));
    const spawnGroup = () => {
      const child = spawn('sleep', ['300'], { detached: true, stdio: 'ignore' });
      child.unref();
      return child.pid as number;
    };
    const [a, b, spared] = [spawnGroup(), spawnGroup(), spawnGroup()];
    supervisor.added(a);
    supervisor.added(b);
    supervisor.added(spared);
    supervisor.removed(spared);
    await new Promise((r) => setTimeout(r, 200)); // the supervisor has read the lines
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1_500);
    await eventually(() => expect(seen.map((k) => k.pgid).sort()).toEqual([a, b].sort()));
    for (const k of seen) expect(k.silentMs).toBeGreaterThan(500);
    expect(supervisor.killedBySupervisor(a)).toBe(true);
    expect(supervisor.killedBySupervisor(b)).toBe(true);
    expect(supervisor.killOf(a)).toEqual(seen.find((k) => k.pgid === a));
    expect(supervisor.killedBySupervisor(spared)).toBe(false);
    expect(pidRuns(a)).toBe(false);
    expect(pidRuns(spared)).toBe(true);
    // A pgid added again is a new group: the old kill is forgotten.
    supervisor.added(a);
    expect(supervisor.killedBySupervisor(a)).toBe(false);
    supervisor.removed(a);
    process.kill(-spared, 'SIGKILL');
    await supervisor.stop();
  });

  test('a blocked daemon event loop past the timeout: every task group is SIGKILLed by the supervisor; the attempt is handed back', async () => {
    const supervisor = await TaskSupervisor.start({ timeoutMs: 1_500 });
    const logs = new LogStore({ dir: join(dir.path, 'inproc', 'logs') });
    const ex = new TaskExecutor({
      capacity: 2,
      killGraceMs: 200,
      logs,
      workDir: join(dir.path, 'inproc', 'work'),
      groupWatcher: supervisor,
    });
    const req = attemptRequest({ type: 'shell', command: 'sleep 300 & echo "gc=$!"; wait' });
    ex.submit(req);
    const gc = await eventually(() => {
      const m = /gc=(\d+)/.exec(readFileSync(logs.pathFor(req.attemptId), 'utf8'));
      if (!m) throw new Error('no pid yet');
      return Number(m[1]);
    });
    // Healthy heartbeats for longer than the timeout: nothing is killed.
    await new Promise((r) => setTimeout(r, 2_000));
    expect(pidRuns(gc)).toBe(true);
    // Freeze this thread (what a long GC pause or SIGSTOP does to the daemon) for 4 s.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 4_000);
    expect(pidRuns(gc)).toBe(false);
    const result = await ex.result(req.attemptId);
    // Not the task's fault: failed-over (the master re-runs it without using a retry), not failed.
    expect(result).toMatchObject({ state: 'failed-over', signal: 'SIGKILL' });
    expect(result?.error).toMatch(
      /^the task supervisor killed it: the worker daemon did not answer it for \d+ ms \(frozen or stalled\); handed back$/,
    );
    await supervisor.stop();
  });

  test('kill -9 of the daemon: the supervisor kills its task groups and exits', async () => {
    expect(existsSync(built), 'the worker package must be built (npx tsc -b packages/worker)').toBe(true);
    const daemon = spawnProcess(process.execPath, [fixture, join(dir.path, 'k9'), '3000'], {
      name: 'daemon-k9',
    });
    const supervisorPid = Number(/supervisor=(\d+)/.exec(await daemon.waitForOutput(/supervisor=\d+/))?.[1]);
    const gc = await grandchildOf(daemon);
    expect(pidRuns(gc)).toBe(true);
    await daemon.kill9();
    // EOF on the supervisor's stdin: it acts at once, not after the 3 s timeout.
    await eventually(() => expect(pidRuns(gc)).toBe(false), { timeoutMs: 2_000 });
    await eventually(() => expect(pidRuns(supervisorPid)).toBe(false), { timeoutMs: 2_000 });
  });

  test('SIGSTOP of the daemon past the timeout: the task is dead before the daemon is continued', async () => {
    const daemon = spawnProcess(process.execPath, [fixture, join(dir.path, 'stop'), '1000'], {
      name: 'daemon-stop',
    });
    const supervisorPid = Number(/supervisor=(\d+)/.exec(await daemon.waitForOutput(/supervisor=\d+/))?.[1]);
    const gc = await grandchildOf(daemon);
    daemon.pause();
    const stoppedAt = performance.now();
    await eventually(() => expect(pidRuns(gc)).toBe(false), { timeoutMs: 5_000 });
    const killedAfter = performance.now() - stoppedAt;
    expect(killedAfter).toBeGreaterThan(700); // not before the timeout
    expect(pidRuns(supervisorPid)).toBe(true); // it keeps watching
    daemon.resume();
    // The daemon sees its task end by a signal it did not send, and the supervisor's word that it
    // sent it (both arrive once the daemon runs again, in either order): handed back, not failed.
    await daemon.waitForOutput(
      /finished state=failed-over signal=SIGKILL error=the task supervisor killed it: the worker daemon did not answer it for \d+ ms/,
      10_000,
    );
    await daemon.kill9();
    await eventually(() => expect(pidRuns(supervisorPid)).toBe(false), { timeoutMs: 2_000 });
  });
});
