import { afterAll, describe, expect, it } from 'vitest';
import { eventually, processExists, startZooKeeperEnsemble, type ZkEnsemble } from '../src/index.js';
import { connectZk, create, getData, type ZkClient } from './zk-helpers.js';

describe('startZooKeeperEnsemble', () => {
  const clients: ZkClient[] = [];
  let ensemble: ZkEnsemble;
  afterAll(() => {
    for (const c of clients) c.close();
  });

  it('starts a 3-server quorum with one leader', async () => {
    const started = performance.now();
    ensemble = await startZooKeeperEnsemble();
    console.log(`[measure] ZooKeeper ensemble start ${Math.round(performance.now() - started)} ms`);
    expect(ensemble.servers).toHaveLength(3);
    expect(new Set(ensemble.servers.map((s) => s.port)).size).toBe(3);
    const modes = await Promise.all(
      ensemble.servers.map(async (s) => /^Mode: (\w+)/m.exec(await s.fourLetterWord('srvr'))?.[1]),
    );
    expect(modes.filter((m) => m === 'leader')).toHaveLength(1);
    expect(modes.filter((m) => m === 'follower')).toHaveLength(2);
  });

  it('keeps serving a client after the server it uses is killed -9, and takes that server back', async () => {
    const client = await connectZk(ensemble.connectString, 6000);
    clients.push(client);
    await create(client, '/before', 'b');
    // Find the server this client is connected to: its `cons` lists our connection.
    const sessionId = `sid=0x${BigInt(`0x${client.getSessionId().toString('hex')}`).toString(16)},`;
    const connected = await eventually(async () => {
      const hits: number[] = [];
      for (const [i, s] of ensemble.servers.entries()) {
        if ((await s.fourLetterWord('cons')).includes(sessionId)) hits.push(i);
      }
      expect(hits).toHaveLength(1);
      return hits[0]!;
    });
    const victim = ensemble.servers[connected]!;
    const victimPid = victim.pid;
    await victim.kill();
    expect(processExists(victimPid)).toBe(false);

    // The client moves to a surviving server and the quorum (2 of 3) keeps accepting writes.
    await eventually(
      async () => {
        await create(client, '/after-kill', 'a');
      },
      { intervalMs: 200 },
    );
    expect(await getData(client, '/before')).toBe('b');

    await victim.restart();
    expect(victim.pid).not.toBe(victimPid);
    expect(await victim.fourLetterWord('srvr')).toMatch(/Mode: (leader|follower)/);
    // The restarted server caught up with what was written while it was down.
    const direct = await connectZk(victim.connectString);
    clients.push(direct);
    expect(await getData(direct, '/after-kill')).toBe('a');
  });
});
