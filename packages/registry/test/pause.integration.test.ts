import { execFileSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { eventually, sharedZooKeeper, spawnProcess, timing, zkChroot } from '@sched/testkit';
import { beforeAll, describe, expect, it } from 'vitest';
import { openSession } from './support/zk.js';

// A paused process (GC, SIGSTOP) must not act on a stale belief: when it wakes up after its
// session has expired, its first lease check fails, before it learns anything from the server.

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const checker = fileURLToPath(new URL('./support/lease-checker.mjs', import.meta.url));
let connect: string;

beforeAll(async () => {
  // The child runs the built package, as daemons do.
  execFileSync(process.execPath, [`${repo}node_modules/typescript/bin/tsc`, '-b', 'packages/registry'], {
    cwd: repo,
    stdio: 'pipe',
  });
  connect = await zkChroot(await sharedZooKeeper(), 'registry-pause');
}, 120_000);

const epoch = () => performance.timeOrigin + performance.now();

describe('a paused process (SIGSTOP past the session timeout)', () => {
  it('refuses to act at its first lease check after SIGCONT, and acts again only in a new session', async () => {
    const T = 2000;
    const child = spawnProcess(process.execPath, [checker, connect, String(T)], { name: 'lease-checker' });
    await child.waitForOutput(/^ready /m, timing.forWaiting());
    await child.waitForOutput(/^acted /m, timing.forWaiting());
    const observer = await openSession(connect);
    expect(await observer.exists('/paused-node')).toBeDefined();

    const stoppedAt = epoch();
    child.pause();
    // The server expires the frozen process's session and deletes its node.
    await eventually(async () => expect(await observer.exists('/paused-node')).toBeUndefined(), {
      timeoutMs: T * 5,
    });
    await timing.sleep(300);
    child.resume();
    await child.waitForOutput(/^status RECONNECTED /m, timing.forWaiting());
    await timing.sleep(200);

    const after = child
      .output()
      .split('\n')
      .map((line) => line.trim().split(' '))
      .filter((parts) => Number(parts.at(-1)) > stoppedAt)
      .map((parts) => parts.slice(0, -1).join(' '));
    const firstAction = after.find((l) => l.startsWith('acted') || l.startsWith('refused'));
    expect(firstAction).toMatch(/^refused SESSION_/);
    const reconnected = after.indexOf('status RECONNECTED');
    const firstActed = after.indexOf('acted');
    expect(after).toContain('status LOST');
    expect(after.indexOf('status LOST')).toBeLessThan(reconnected);
    // Nothing was done between waking up and having a new session.
    expect(firstActed).toBeGreaterThan(reconnected);
    await child.stop(2000);
  });
});
