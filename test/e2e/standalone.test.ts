// Zero-setup standalone mode: `sched-standalone` brings up ZooKeeper, PostgreSQL, a master and a
// worker from a folder; the demo workflow runs every few seconds; `sched-ctl cluster status` in
// the same folder, with no variables set, finds it (one leader master, one worker); Ctrl-C
// leaves no process behind; a restart reuses the data.
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { eventually, registerCleanup, spawnProcess } from '@sched/testkit';
import { expect, test } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const bin = (name: string) => join(root, 'packages/cli/dist/bin', `${name}.js`);
const run = promisify(execFile);

/** Every process in the tree below `pid` (via /proc), including `pid`. */
function descendants(pid: number): number[] {
  const all: number[] = [pid];
  const children = (p: number): number[] => {
    try {
      return readFileSync(`/proc/${p}/task/${p}/children`, 'utf8')
        .trim()
        .split(/\s+/)
        .filter(Boolean)
        .map(Number);
    } catch {
      return [];
    }
  };
  for (let i = 0; i < all.length; i++) all.push(...children(all[i] as number));
  return all;
}

/** A clean environment: no SCHED_* variable, so sched-ctl must find the cluster by itself. */
function cleanEnv(): Record<string, string> {
  return Object.fromEntries(
    Object.entries(process.env).filter(([k, v]) => !k.startsWith('SCHED_') && v !== undefined),
  ) as Record<string, string>;
}

async function startStandalone(cwd: string) {
  // Its output also goes to a file in its folder, kept for diagnosis if the test fails.
  const log = join(cwd, 'standalone-output.log');
  const child = spawnProcess(process.execPath, [bin('sched-standalone')], {
    cwd,
    replaceEnv: true,
    env: { ...cleanEnv(), SCHED_LOG_LEVEL: 'info' },
    logFile: log,
  });
  await child.waitForOutput(/ready in [\d.]+ s/, 180_000).catch((err) => {
    throw new Error(`${(err as Error).message}\n(full output: ${log})`);
  });
  return child;
}

test('sched-standalone: one command, a running demo, sched-ctl finds it, Ctrl-C leaves nothing', {
  timeout: 240_000,
}, async () => {
  const cwd = mkdtempSync(join(tmpdir(), 'sched-standalone-'));
  cpSync(join(root, 'deploy/examples'), join(cwd, 'deploy/examples'), { recursive: true });

  const child = await startStandalone(cwd);
  expect(child.output()).toMatch(/workflow hello created/);
  expect(existsSync(join(cwd, '.sched-data/standalone.json'))).toBe(true);

  const { stdout } = await run(process.execPath, [bin('sched-ctl'), 'cluster', 'status', '--json'], {
    cwd,
    env: cleanEnv(),
  });
  const status = JSON.parse(stdout) as { masters: { leader: boolean }[]; workers: unknown[] };
  expect(status.masters).toHaveLength(1);
  expect(status.masters[0]?.leader).toBe(true);
  expect(status.workers).toHaveLength(1);

  // The demo fires every 5 seconds: two scheduled runs succeed within ~15 s.
  await eventually(
    async () => {
      const out = await run(
        process.execPath,
        [bin('sched-ctl'), 'run', 'list', '--workflow', 'hello', '--json'],
        {
          cwd,
          env: cleanEnv(),
        },
      );
      const runs = JSON.parse(out.stdout) as { state: string; fireTime: string | null }[];
      const ok = runs.filter((r) => r.state === 'succeeded' && r.fireTime !== null);
      if (ok.length < 2) throw new Error(`only ${ok.length} scheduled runs succeeded`);
    },
    { timeoutMs: 40_000, intervalMs: 1_000 },
  ).catch((err) => {
    throw new Error(`${(err as Error).message}\n${child.output().slice(-4000)}`);
  });

  // Ctrl-C: everything it started (ZooKeeper, PostgreSQL and its backends) is gone.
  const tree = descendants(child.pid);
  // Backstop if this test fails half-way: the servers run in their own process groups.
  registerCleanup('standalone servers', async () => {
    for (const p of tree) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // gone
      }
    }
  });
  expect(tree.length).toBeGreaterThanOrEqual(3);
  child.signal('SIGINT');
  const exit = await child.exited;
  expect(exit.code).toBe(0);
  await eventually(
    () => {
      const alive = tree.filter(
        (p) => existsSync(`/proc/${p}`) && !readFileSync(`/proc/${p}/stat`, 'utf8').includes(') Z '),
      );
      if (alive.length > 0) throw new Error(`still alive: ${alive.join(', ')}`);
    },
    { timeoutMs: 20_000 },
  );

  // A restart reuses the data: the examples are unchanged, and earlier runs are still there —
  // even when something else took the old ZooKeeper port meanwhile (here: a listener that accepts
  // and never answers, the worst case): the restart moves to a new port and says so.
  const state = JSON.parse(readFileSync(join(cwd, '.sched-data/standalone.json'), 'utf8')) as {
    zkPort: number;
  };
  const squatter = createServer(() => {});
  await new Promise<void>((r) => squatter.listen(state.zkPort, '127.0.0.1', () => r()));
  registerCleanup('port squatter', () => new Promise<void>((r) => squatter.close(() => r())));
  const again = await startStandalone(cwd);
  expect(again.output()).toMatch(/workflow hello unchanged/);
  const moved = JSON.parse(readFileSync(join(cwd, '.sched-data/standalone.json'), 'utf8')) as {
    zkPort: number;
  };
  expect(moved.zkPort).not.toBe(state.zkPort);
  again.signal('SIGINT');
  expect((await again.exited).code).toBe(0);
});
