import { performance } from 'node:perf_hooks';
import { FaultProxy, sharedZooKeeper, zkChroot } from '@sched/testkit';
import { beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { isZkError, ZnodeDataError } from '../src/errors.js';
import { createJson, readJson, writeJson } from '../src/json-node.js';
import { MultiOpError, multi } from '../src/multi.js';
import { parseSequentialName, protectedCreate } from '../src/protected-create.js';
import { listSubtree, removeRecursive } from '../src/tree.js';
import { openSession, rawClient } from './support/zk.js';

// The primitives node-zookeeper-client gets wrong.

let connect: string;
let serverAddress: { host: string; port: number };
let chrootPath: string;

beforeAll(async () => {
  const zk = await sharedZooKeeper();
  serverAddress = { host: zk.host, port: zk.port };
  connect = await zkChroot(zk, 'registry-primitives');
  chrootPath = connect.slice(connect.indexOf('/'));
});

describe('version-0 conditional writes', () => {
  it('single-op setData and remove with expected version 0 fail with BAD_VERSION when the node is at version 1', async () => {
    const session = await openSession(connect);
    await session.create('/cas-single', Buffer.from('v0'));
    await session.setData('/cas-single', Buffer.from('v1')); // now version 1
    await expect(session.setData('/cas-single', Buffer.from('stale'), 0)).rejects.toMatchObject({
      code: 'ZK_BAD_VERSION',
    });
    await expect(session.remove('/cas-single', 0)).rejects.toMatchObject({ code: 'ZK_BAD_VERSION' });
    const { data, stat } = await session.getData('/cas-single');
    expect(data.toString()).toBe('v1');
    expect(stat.version).toBe(1);
  });

  it('multi-op check/setData/remove with expected version 0 fail when the node is at version 1, and nothing is applied', async () => {
    const session = await openSession(connect);
    await session.create('/cas-multi', Buffer.from('v0'));
    await session.create('/cas-multi-other', Buffer.from('untouched'));
    await session.setData('/cas-multi', Buffer.from('v1'));

    for (const op of [
      { op: 'check', path: '/cas-multi', version: 0 },
      { op: 'setData', path: '/cas-multi', data: Buffer.from('stale'), version: 0 },
      { op: 'remove', path: '/cas-multi', version: 0 },
    ] as const) {
      const attempt = multi(session, [
        op,
        { op: 'setData', path: '/cas-multi-other', data: Buffer.from('changed') },
      ]);
      await expect(attempt).rejects.toBeInstanceOf(MultiOpError);
      await expect(attempt).rejects.toMatchObject({ zkCode: 'BAD_VERSION', failedIndex: 0 });
    }
    expect((await session.getData('/cas-multi-other')).data.toString()).toBe('untouched');
    expect((await session.getData('/cas-multi')).data.toString()).toBe('v1');
  });

  it('multi-op with version 0 succeeds on a node that is at version 0 (the CAS is real both ways)', async () => {
    const session = await openSession(connect);
    await session.create('/cas-fresh', Buffer.from('v0'));
    const result = await multi(session, [
      { op: 'check', path: '/cas-fresh', version: 0 },
      { op: 'setData', path: '/cas-fresh', data: Buffer.from('v1'), version: 0 },
      { op: 'create', path: '/cas-fresh-child', data: Buffer.from('x') },
    ]);
    expect(result[2]).toBe('/cas-fresh-child');
    expect((await session.getData('/cas-fresh')).stat.version).toBe(1);
  });

  it("the library's own transaction turns version 0 into 'any version' (why multi.ts exists)", async () => {
    const session = await openSession(connect);
    await session.create('/cas-raw', Buffer.from('v0'));
    await session.setData('/cas-raw', Buffer.from('v1'));
    const client = await rawClient(connect);
    const err = await new Promise<unknown>((resolve) =>
      client
        .transaction()
        .check('/cas-raw', 0)
        .setData('/cas-raw', Buffer.from('overwritten'), 0)
        .commit(resolve),
    );
    expect(err).toBeNull(); // the bug: a stale CAS succeeded
    expect((await session.getData('/cas-raw')).data.toString()).toBe('overwritten');
  });
});

describe('subtree listing and recursive delete', () => {
  it('lists and deletes a tree of 1,111 nodes exactly', async () => {
    const session = await openSession(connect);
    const root = '/big';
    const expected = [root];
    const ops: { op: 'create'; path: string }[] = [];
    for (let a = 0; a < 10; a++) {
      ops.push({ op: 'create', path: `${root}/a${a}` });
      for (let b = 0; b < 10; b++) {
        ops.push({ op: 'create', path: `${root}/a${a}/b${b}` });
        for (let c = 0; c < 10; c++) ops.push({ op: 'create', path: `${root}/a${a}/b${b}/c${c}` });
      }
    }
    await session.create(root, undefined);
    // Parents come before children in `ops`, so batches in order are valid.
    for (let i = 0; i < ops.length; i += 200) await multi(session, ops.slice(i, i + 200));
    expected.push(...ops.map((o) => o.path));
    expect(expected.length).toBe(1111);

    const listed = await listSubtree(session, root);
    expect(listed.length).toBe(1111);
    expect(new Set(listed)).toEqual(new Set(expected));
    // Parents before children.
    const position = new Map(listed.map((p, i) => [p, i]));
    for (const p of listed.slice(1)) {
      expect(position.get(p.slice(0, p.lastIndexOf('/')))).toBeLessThan(position.get(p) as number);
    }

    const removed = await removeRecursive(session, root);
    expect(removed).toBe(1111);
    expect(await session.exists(root)).toBeUndefined();
    expect(await listSubtree(session, root)).toEqual([]);
    // Deleting what is not there is a no-op.
    expect(await removeRecursive(session, root)).toBe(0);
  });
});

describe('protected sequential creates', () => {
  it('a connection cut after the server applied a sequential create, before its reply arrived, leaves exactly one node', async () => {
    const proxy = await FaultProxy.start(serverAddress);
    const session = await openSession(`${proxy.address}${chrootPath}`, { sessionTimeoutMs: 10_000 });
    const observer = await openSession(connect, { sessionTimeoutMs: 10_000 });
    await observer.mkdirp('/candidates');
    let createdSeenAt = 0;
    await observer.getChildren('/candidates', () => {
      createdSeenAt = performance.now();
    });

    // Every chunk takes 400 ms through the proxy each way: the create reaches the server at
    // ~400 ms, its reply would reach the client at ~800 ms. Cut at ~600 ms: applied, reply lost.
    const statuses: string[] = [];
    session.on('status', (st) => statuses.push(st.kind));
    proxy.setMode({ delayMs: 400 });
    const guid = '0f0e0d0c-0b0a-4909-8807-060504030201';
    const creating = protectedCreate(session, '/candidates', 'n_', {
      guid,
      data: Buffer.from('me'),
      mode: 'ephemeral-sequential',
    });
    const cutAt = await new Promise<number>((resolve) => {
      const poll = setInterval(() => {
        if (createdSeenAt > 0) {
          clearInterval(poll);
          proxy.setMode('cut'); // resets the connection, then passes traffic again
          resolve(performance.now());
        }
      }, 5);
    });
    const node = await creating;
    // The reply was really lost: the create resolved only after the connection dropped and came back.
    expect(statuses).toEqual(['SUSPENDED', 'RECONNECTED']);
    expect(createdSeenAt).toBeGreaterThan(0);
    expect(cutAt).toBeGreaterThanOrEqual(createdSeenAt);
    const { children } = await observer.getChildren('/candidates');
    const mine = children.filter((c) => c.startsWith(guid));
    expect(mine).toEqual([node.name]);
    expect(parseSequentialName(node.name)).toEqual({ guid, sequence: node.sequence });
    expect((await observer.exists(node.path))?.ephemeralOwner).toBe(session.sessionId);
  });

  it('without a fault: one node, name {guid}-{suffix}{10-digit sequence}', async () => {
    const session = await openSession(connect);
    await session.mkdirp('/plain');
    const a = await protectedCreate(session, '/plain', 'lock-');
    const b = await protectedCreate(session, '/plain', 'lock-');
    expect(a.name).toMatch(/^[0-9a-f-]{36}-lock-\d{10}$/);
    expect(b.sequence).toBe(a.sequence + 1);
  });
});

describe('JSON znodes with schema checks', () => {
  const schema = z.object({ name: z.string(), count: z.number().int() });

  it('round-trips, writes conditionally, and names the znode and field on bad content', async () => {
    const session = await openSession(connect);
    await createJson(session, '/json-ok', schema, { name: 'a', count: 1 });
    const read = await readJson(session, '/json-ok', schema);
    expect(read.value).toEqual({ name: 'a', count: 1 });
    await writeJson(session, '/json-ok', schema, { name: 'a', count: 2 }, read.stat.version);
    await expect(writeJson(session, '/json-ok', schema, { name: 'a', count: 3 }, 0)).rejects.toSatisfy((e) =>
      isZkError(e, 'BAD_VERSION'),
    );
    await session.create('/json-bad', Buffer.from(JSON.stringify({ name: 'a', count: 'many' })));
    const bad = readJson(session, '/json-bad', schema);
    await expect(bad).rejects.toBeInstanceOf(ZnodeDataError);
    await expect(bad).rejects.toThrow(/\/json-bad: unexpected content: count:/);
    await session.create('/json-garbage', Buffer.from('{not json'));
    await expect(readJson(session, '/json-garbage', schema)).rejects.toThrow(/\/json-garbage: not JSON/);
  });
});
