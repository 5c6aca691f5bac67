import { EventQueue, FaultProxy, startZooKeeperEnsemble, timing } from '@sched/testkit';
import { describe, expect, it } from 'vitest';
import { openSession } from './support/zk.js';

// With an ensemble, a silent server is left for another one within the session timeout, as
// the Java client does after its read timeout: SUSPENDED, then RECONNECTED with the SAME
// session — no LOST, no new session, ephemeral nodes kept.

describe('ZkSession with a 3-server ensemble', () => {
  it('a black-holed server is abandoned at SUSPENDED and the same session resumes on another server', async () => {
    const ensemble = await startZooKeeperEnsemble({ size: 3 });
    const proxies = await Promise.all(
      ensemble.servers.map((s) => FaultProxy.start({ host: s.host, port: s.port })),
    );
    const T = 4000;
    const session = await openSession(proxies.map((p) => p.address).join(','), { sessionTimeoutMs: T });
    const sessionId = session.sessionId;
    await session.create('/kept', undefined, { mode: 'ephemeral' });
    const statuses = new EventQueue<string>();
    session.on('status', (s) => statuses.push(`${s.kind}${'reason' in s ? `:${s.reason}` : ''}`));

    const used = proxies.filter((p) => p.connections() > 0);
    expect(used).toHaveLength(1);
    (used[0] as FaultProxy).setMode('blackhole');
    await statuses.expectSequence(['SUSPENDED:silent', 'RECONNECTED'], timing.forWaiting());
    expect(session.status).toMatchObject({ kind: 'RECONNECTED', newSession: false, generation: 1 });
    expect(session.sessionId).toBe(sessionId);
    expect((await session.exists('/kept'))?.ephemeralOwner).toBe(sessionId);
    // Well past the session timeout: still the same session, never LOST.
    await statuses.expectQuiet(T);
    expect(session.checkLease().sessionId).toBe(sessionId);
    (used[0] as FaultProxy).setMode('pass');
  }, 120_000);
});
