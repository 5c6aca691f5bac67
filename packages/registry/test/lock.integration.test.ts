import { performance } from 'node:perf_hooks';
import { eventually, FaultProxy, sharedZooKeeper, timing, zkChroot } from '@sched/testkit';
import { beforeAll, describe, expect, it } from 'vitest';
import { DistributedLock } from '../src/distributed-lock.js';
import { RegistryPaths } from '../src/registry-paths.js';
import { openSession } from './support/zk.js';

// Distributed locks: mutual exclusion, acquire timeout, release on session loss.

let connect: string;
let chroot: string;
let serverAddress: { host: string; port: number };
const paths = new RegistryPaths('/sched');

beforeAll(async () => {
  const zk = await sharedZooKeeper();
  serverAddress = { host: zk.host, port: zk.port };
  connect = await zkChroot(zk, 'registry-lock');
  chroot = connect.slice(connect.indexOf('/'));
});

describe('DistributedLock', () => {
  it('mutual exclusion among 5 contenders over 200 acquisitions (a shared counter checked inside the critical section)', async () => {
    const sessions = await Promise.all(Array.from({ length: 5 }, () => openSession(connect)));
    const locks = sessions.map((s) => new DistributedLock(s, paths, 'counter'));
    let inside = 0;
    let overlaps = 0;
    let counter = 0;
    const tokens: bigint[] = [];
    await Promise.all(
      locks.map(async (lock) => {
        for (let i = 0; i < 40; i++) {
          await lock.withLock(
            async (handle) => {
              handle.check();
              inside++;
              if (inside !== 1) overlaps++;
              const seen = counter;
              // Yield while "inside": a broken lock lets another contender interleave here.
              await new Promise((r) => setTimeout(r, Math.random() < 0.5 ? 0 : 1));
              counter = seen + 1;
              tokens.push(handle.token);
              inside--;
            },
            { timeoutMs: timing.forWaiting() },
          );
        }
      }),
    );
    expect(overlaps).toBe(0);
    expect(counter).toBe(200);
    // Each hold had its own node; tokens (czxids) strictly grow in acquisition order.
    for (let i = 1; i < tokens.length; i++)
      expect((tokens[i] as bigint) > (tokens[i - 1] as bigint)).toBe(true);
    const { children } = await (sessions[0] as (typeof sessions)[0]).getChildren(paths.lock('counter'));
    expect(children).toEqual([]);
  });

  it('acquire gives up at its timeout and leaves no node behind', async () => {
    const a = await openSession(connect);
    const b = await openSession(connect);
    const held = await new DistributedLock(a, paths, 'timeout').acquire();
    const started = performance.now();
    await expect(new DistributedLock(b, paths, 'timeout').acquire({ timeoutMs: 400 })).rejects.toMatchObject({
      code: 'TIMEOUT',
    });
    const waited = performance.now() - started;
    expect(waited).toBeGreaterThanOrEqual(390);
    expect(waited).toBeLessThan(2000);
    expect((await a.getChildren(paths.lock('timeout'))).children).toEqual([
      held.node.slice(held.node.lastIndexOf('/') + 1),
    ]);
    await held.release();
    // Free again: acquired at once.
    const again = await new DistributedLock(b, paths, 'timeout').acquire({ timeoutMs: 2000 });
    await again.release();
  });

  it('a holder whose session is lost is told (signal) before anyone else gets the lock, and the lock is released', async () => {
    const proxy = await FaultProxy.start(serverAddress);
    const T = 3000;
    const holderSession = await openSession(`${proxy.address}${chroot}`, { sessionTimeoutMs: T });
    const waiterSession = await openSession(connect, { sessionTimeoutMs: 4000 });
    const held = await new DistributedLock(holderSession, paths, 'loss').acquire();
    let abortedAt = 0;
    held.signal.addEventListener('abort', () => {
      abortedAt = performance.now();
    });
    const waiting = new DistributedLock(waiterSession, paths, 'loss').acquire({
      timeoutMs: timing.forWaiting(),
    });
    await timing.sleep(200);
    proxy.setMode('blackhole');
    const got = await waiting;
    const gotAt = performance.now();
    expect(abortedAt).toBeGreaterThan(0);
    expect(abortedAt).toBeLessThan(gotAt);
    expect(() => held.check()).toThrow();
    expect(got.token > held.token).toBe(true);
    await got.release();
    proxy.setMode('pass');
    await eventually(() => expect(holderSession.generation).toBe(2));
    await held.release(); // a no-op: the node went with the old session
  });
});
