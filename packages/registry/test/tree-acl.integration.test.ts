// The ACLs of sched's tree against a real ZooKeeper (docs/security.md#zookeeper): what a daemon
// checks at start (`ensureSecureLayout`), the migration of a tree created without credentials
// (`secureTree`, behind `sched-ctl zk secure`), and the refusals with their messages.
import { Writable } from 'node:stream';
import { createLogger } from '@sched/core';
import { sharedZooKeeper, zkChroot } from '@sched/testkit';
import { beforeAll, describe, expect, it } from 'vitest';
import { aclPerms, digestId, formatAcls, parseDigestAuth } from '../src/acl.js';
import { ensureLayout } from '../src/layout.js';
import { RegistryPaths } from '../src/registry-paths.js';
import { ensureSecureLayout, readTreeAcls, secureTree } from '../src/tree-acl.js';
import type { ZkSession } from '../src/zk-session.js';
import { openSession } from './support/zk.js';

const AUTH = 'sched:tree-acl-credentials-0123456789';
const OTHER = 'sched:some-other-credentials-9876543';
const paths = new RegistryPaths('/sched');
let zkConnect: string;

beforeAll(async () => {
  zkConnect = (await sharedZooKeeper()).connectString;
});

function capturingLogger() {
  const lines: { level: number; msg: string }[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) lines.push(JSON.parse(line));
      callback();
    },
  });
  return { logger: createLogger({ level: 'info', pretty: false, destination }), lines };
}

/** Every node under the root has exactly the digest ACL of `auth` with all rights. */
async function expectAllDigest(session: ZkSession, auth: string): Promise<string[]> {
  const nodes = await readTreeAcls(session, paths.root);
  expect(nodes.length).toBeGreaterThan(0);
  for (const n of nodes) {
    expect({ path: n.path, acl: n.acl?.map((a) => `${a.id.scheme}:${a.id.id}=${aclPerms(a)}`) }).toEqual({
      path: n.path,
      acl: [`digest:${digestId(parseDigestAuth(auth))}=31`],
    });
  }
  return nodes.map((n) => n.path);
}

/** A tree as an earlier version (or an --insecure-zk daemon) made it: everything open. */
async function openTree(connect: string): Promise<ZkSession> {
  const open = await openSession(connect);
  await ensureLayout(open, paths);
  await open.create(paths.failoverRecord('worker', '127.0.0.1:1_1'), Buffer.from('{}'));
  await open.mkdirp(paths.lock('old'));
  return open;
}

describe('ensureSecureLayout', () => {
  it('with credentials on a fresh chroot: lays out the tree, every znode with the digest ACL only', async () => {
    const connect = await zkChroot({ connectString: zkConnect }, 'acl-fresh');
    const session = await openSession(connect, { auth: AUTH });
    const { logger, lines } = capturingLogger();
    expect(await ensureSecureLayout(session, paths, { logger })).toEqual({ migrated: [] });
    expect((await expectAllDigest(session, AUTH)).sort()).toEqual(
      [paths.root, paths.failoverFinishNodes, ...paths.parents].sort(),
    );
    expect(lines.filter((l) => l.level >= 40)).toEqual([]);
    // Idempotent.
    expect(await ensureSecureLayout(session, paths, { logger })).toEqual({ migrated: [] });
  });

  it('migrates an open tree with no live member registered without credentials, and logs it', async () => {
    const connect = await zkChroot({ connectString: zkConnect }, 'acl-migrate');
    await openTree(connect);
    const session = await openSession(connect, { auth: AUTH });
    const { logger, lines } = capturingLogger();
    const { migrated } = await ensureSecureLayout(session, paths, { logger, who: 'sched-master' });
    expect(migrated).toContain(paths.root);
    expect(migrated).toContain(paths.failoverRecord('worker', '127.0.0.1:1_1'));
    expect(migrated).toContain(paths.lock('old'));
    await expectAllDigest(session, AUTH);
    const warned = lines.filter((l) => l.level === 40).map((l) => l.msg);
    expect(warned).toHaveLength(1);
    expect(warned[0]).toContain(`the ZooKeeper tree /sched was open`);
    expect(warned[0]).toContain(`on ${migrated.length} znode(s)`);
    // The client without credentials that made it is locked out now.
    const intruder = await openSession(connect);
    await expect(intruder.create(`${paths.members('worker')}/fake`, undefined)).rejects.toMatchObject({
      code: 'ZK_NO_AUTH',
    });
    await expect(intruder.remove(paths.failoverRecord('worker', '127.0.0.1:1_1'))).rejects.toMatchObject({
      code: 'ZK_NO_AUTH',
    });
  });

  it('refuses an open tree while a live member registered without credentials, changing nothing; secureTree --force locks it out', async () => {
    const connect = await zkChroot({ connectString: zkConnect }, 'acl-live-open');
    const open = await openTree(connect);
    const member = paths.member('worker', '127.0.0.1:7_1');
    await open.create(member, Buffer.from('{}'), { mode: 'ephemeral' });
    const session = await openSession(connect, { auth: AUTH });
    const refusal = await ensureSecureLayout(session, paths, { who: 'sched-worker' }).catch((e: Error) => e);
    expect(refusal).toMatchObject({ code: 'ZK_TREE_OPEN' });
    expect((refusal as Error).message).toContain(member);
    expect((refusal as Error).message).toContain('sched-ctl zk secure --force');
    expect((refusal as Error).message).toContain('SCHED_ZK_AUTH');
    // Nothing was changed: the member can still refresh its heartbeat.
    await open.setData(member, Buffer.from('{"still":"open"}'));
    expect(formatAcls((await session.getAcl(paths.root)).acl)).toBe('world:anyone=cdrwa');

    const refused = await secureTree(session, paths.root);
    expect(refused).toMatchObject({ refused: true, openEphemerals: [member], changed: [] });
    const forced = await secureTree(session, paths.root, { force: true });
    expect(forced.refused).toBe(false);
    expect(forced.changed).toContain(member);
    expect(forced.failed).toEqual([]);
    await expectAllDigest(session, AUTH);
    await expect(open.setData(member, Buffer.from('{}'))).rejects.toMatchObject({ code: 'ZK_NO_AUTH' });
  });

  it('refuses a tree protected by other credentials, and an insecure session on a protected tree', async () => {
    const connect = await zkChroot({ connectString: zkConnect }, 'acl-foreign');
    await ensureSecureLayout(await openSession(connect, { auth: OTHER }), paths);
    const wrong = await openSession(connect, { auth: AUTH });
    const e1 = await ensureSecureLayout(wrong, paths, { who: 'sched-master' }).catch((e: Error) => e);
    expect(e1).toMatchObject({ code: 'ZK_TREE_PROTECTED' });
    expect((e1 as Error).message).toContain('protected by other ZooKeeper credentials than SCHED_ZK_AUTH');
    expect((e1 as Error).message).toContain('sched-master cannot register there');
    const none = await openSession(connect);
    const e2 = await ensureSecureLayout(none, paths, { who: 'sched-worker' }).catch((e: Error) => e);
    expect(e2).toMatchObject({ code: 'ZK_TREE_PROTECTED' });
    expect((e2 as Error).message).toContain('--insecure-zk');
    // secureTree with the wrong credentials changes nothing it may not.
    const r = await secureTree(wrong, paths.root, { force: true });
    expect(r.changed).toEqual([]);
    expect(r.failed.map((f) => f.path)).toContain(paths.root);
  });

  it('without credentials (insecure) on an open tree: fine, the znodes stay open', async () => {
    const connect = await zkChroot({ connectString: zkConnect }, 'acl-insecure');
    const session = await openSession(connect);
    expect(await ensureSecureLayout(session, paths)).toEqual({ migrated: [] });
    expect(formatAcls((await session.getAcl(paths.members('worker'))).acl)).toBe('world:anyone=cdrwa');
  });
});

describe('secureTree', () => {
  it('--dry-run lists what would change and changes nothing; a second run finds nothing to do', async () => {
    const connect = await zkChroot({ connectString: zkConnect }, 'acl-dry');
    await openTree(connect);
    const session = await openSession(connect, { auth: AUTH });
    const dry = await secureTree(session, paths.root, { dryRun: true });
    expect(dry.changed).toContain(paths.root);
    expect(dry.acl).toBe('digest:sched=cdrwa');
    expect(formatAcls((await session.getAcl(paths.root)).acl)).toBe('world:anyone=cdrwa');
    const real = await secureTree(session, paths.root);
    expect(real.changed.sort()).toEqual(dry.changed.sort());
    expect(real.unchanged).toBe(0);
    const again = await secureTree(session, paths.root);
    expect(again).toMatchObject({ changed: [], unchanged: real.changed.length, failed: [] });
  });

  it('without credentials it refuses to run', async () => {
    const connect = await zkChroot({ connectString: zkConnect }, 'acl-nocreds');
    await expect(secureTree(await openSession(connect), paths.root)).rejects.toMatchObject({
      code: 'ZK_NO_CREDENTIALS',
    });
  });
});
