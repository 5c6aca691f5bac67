import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { eventually, processExists, spawnProcess, timing } from '../src/index.js';

function processState(pid: number): string | undefined {
  try {
    // /proc/<pid>/stat: "pid (comm) S ..." — the state letter follows the command name.
    return /\) (\w)/.exec(readFileSync(`/proc/${pid}/stat`, 'utf8'))?.[1];
  } catch {
    return undefined;
  }
}

const ticker = "let n = 0; setInterval(() => console.log('tick ' + n++), 20);";

describe('spawnProcess', () => {
  it('captures output, waits for a line and reports the exit', async () => {
    const child = spawnProcess('sh', ['-c', 'echo starting; echo oops >&2; sleep 0.2; echo ready; exit 3'], {
      name: 'script',
    });
    expect(await child.waitForOutput(/ready/)).toBe('ready');
    expect(await child.exited).toEqual({ code: 3, signal: null });
    expect(child.output()).toMatch(/starting\noops\n/);
    expect(child.running).toBe(false);
  });

  it('waitForOutput fails clearly on timeout and on exit', async () => {
    const quiet = spawnProcess('sleep', ['30'], { name: 'quiet' });
    await expect(quiet.waitForOutput(/never/, 200)).rejects.toThrow(
      /quiet \(pid \d+\) did not print \/never\/ within 200 ms/,
    );
    await quiet.kill9();
    const short = spawnProcess('sh', ['-c', 'echo bye'], { name: 'short' });
    await expect(short.waitForOutput(/never/)).rejects.toThrow(/short \(pid \d+\) exited \(code 0.*\n.*bye/s);
  });

  it('pauses (SIGSTOP) and resumes (SIGCONT) a process', async () => {
    const child = spawnProcess(process.execPath, ['-e', ticker], { name: 'ticker' });
    await child.waitForOutput(/tick 3/);
    child.pause();
    await eventually(() => expect(processState(child.pid)).toBe('T'));
    const frozen = child.output();
    await timing.sleep(timing.forSleeping() * 2);
    expect(child.output()).toBe(frozen);
    child.resume();
    await eventually(() => expect(child.output().length).toBeGreaterThan(frozen.length));
    await child.kill9();
  });

  it('kill9 kills the whole process group, grandchildren included', async () => {
    const parent = spawnProcess('sh', ['-c', 'sleep 600 & echo "grandchild $!"; wait'], {
      name: 'sh-parent',
    });
    const grandchild = Number(/grandchild (\d+)/.exec(await parent.waitForOutput(/grandchild \d+/))?.[1]);
    expect(processExists(grandchild)).toBe(true);
    expect(await parent.kill9()).toEqual({ code: null, signal: 'SIGKILL' });
    expect(processExists(parent.pid)).toBe(false);
    await eventually(() => expect(processExists(grandchild)).toBe(false));
  });

  it("signal(sig, 'leader') reaches only the child, not its group", async () => {
    const parent = spawnProcess(
      'sh',
      [
        '-c',
        'trap \'echo parent got TERM\' TERM; sleep 600 & echo "grandchild $!"; while true; do sleep 0.05; done',
      ],
      { name: 'trapping-parent' },
    );
    const grandchild = Number(/grandchild (\d+)/.exec(await parent.waitForOutput(/grandchild \d+/))?.[1]);
    parent.signal('SIGTERM', 'leader');
    await parent.waitForOutput(/parent got TERM/);
    expect(processExists(grandchild)).toBe(true);
    expect(parent.running).toBe(true);
    await parent.kill9();
    await eventually(() => expect(processExists(grandchild)).toBe(false));
  });

  it('waitForOutput works with a global regex, repeatedly', async () => {
    const child = spawnProcess('sh', ['-c', 'echo one; sleep 30'], { name: 'echo-one' });
    const pattern = /one/g;
    expect(await child.waitForOutput(pattern)).toBe('one');
    expect(await child.waitForOutput(pattern)).toBe('one');
    await child.kill9();
  });

  it('stop sends SIGTERM and escalates to SIGKILL after the grace period', async () => {
    const stubborn = spawnProcess(
      process.execPath,
      [
        '-e',
        "process.on('SIGTERM', () => console.log('ignoring')); setInterval(() => {}, 1000); console.log('up')",
      ],
      {
        name: 'stubborn',
      },
    );
    await stubborn.waitForOutput(/up/);
    const started = performance.now();
    expect(await stubborn.stop(300)).toEqual({ code: null, signal: 'SIGKILL' });
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
    expect(stubborn.output()).toMatch(/ignoring/);
  });
});

describe('children are gone after the test file ends', () => {
  // Each test runs a nested vitest that starts servers: slow on a loaded machine.
  const nestedRun = { timeout: 150_000 };
  const root = fileURLToPath(new URL('../../..', import.meta.url));
  const vitestBin = join(root, 'node_modules', 'vitest', 'vitest.mjs');
  const config = fileURLToPath(new URL('./fixtures/vitest.fixture.config.ts', import.meta.url));

  async function runFixture(
    mode: 'fail' | 'sigterm' | 'sigkill',
  ): Promise<{ pids: Record<string, number>; pgDataDir: string; output: string }> {
    const pidFile = join(mkdtempSync(join(tmpdir(), 'sched-fixture-')), 'pids.json');
    const output = await new Promise<string>((resolve) => {
      execFile(
        process.execPath,
        [vitestBin, 'run', '--config', config, 'leaves-children'],
        {
          cwd: root,
          env: { ...process.env, FIXTURE_PID_FILE: pidFile, FIXTURE_MODE: mode },
          timeout: 120_000,
        },
        // The fixture fails on purpose; the exit code is checked through the output.
        (_error, stdout, stderr) => resolve(`${stdout}\n${stderr}`),
      );
    });
    return {
      pids: JSON.parse(readFileSync(pidFile, 'utf8')) as Record<string, number>,
      pgDataDir: readFileSync(`${pidFile}.pgdata`, 'utf8'),
      output,
    };
  }

  it('when a test fails: afterAll cleanup kills every child, servers included', nestedRun, async () => {
    const { pids, pgDataDir, output } = await runFixture('fail');
    expect(output).toMatch(/failing on purpose/);
    // The graceful path ran (a kill backstop would have left the data folder).
    expect(existsSync(pgDataDir), pgDataDir).toBe(false);
    expect(Object.keys(pids).sort()).toEqual(['grandchild', 'parent', 'pg', 'plain', 'worker', 'zk']);
    for (const [name, pid] of Object.entries(pids)) {
      expect(pid, name).toBeGreaterThan(0);
      await eventually(() => expect(processExists(pid), `${name} (pid ${pid}) still exists`).toBe(false));
    }
  });

  it('when the worker is terminated (SIGTERM): the exit backstop kills every child', nestedRun, async () => {
    const { pids } = await runFixture('sigterm');
    for (const [name, pid] of Object.entries(pids)) {
      await eventually(() => expect(processExists(pid), `${name} (pid ${pid}) still exists`).toBe(false));
    }
  });

  it(
    'when the worker is killed -9 (no handler runs): the watchdog kills every child',
    nestedRun,
    async () => {
      const { pids } = await runFixture('sigkill');
      for (const [name, pid] of Object.entries(pids)) {
        await eventually(() => expect(processExists(pid), `${name} (pid ${pid}) still exists`).toBe(false));
      }
    },
  );
});
