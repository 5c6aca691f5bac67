import zookeeper from 'node-zookeeper-client';
import { describe, expect, it } from 'vitest';
import {
  aclState,
  digestId,
  formatAcls,
  OPEN_ACL,
  parseDigestAuth,
  sameAcls,
  schedAcls,
} from '../src/acl.js';
import { masterHeartbeatSchema } from '../src/heartbeat.js';
import { parseSequentialName } from '../src/protected-create.js';
import { RegistryPaths } from '../src/registry-paths.js';
import { Wakeup } from '../src/wakeup.js';

describe('RegistryPaths', () => {
  it('lays out the documented znode paths under the root', () => {
    const p = new RegistryPaths('/sched');
    expect(p.member('master', '10.0.0.1:5678_1')).toBe('/sched/masters/10.0.0.1:5678_1');
    expect(p.member('worker', '10.0.0.1:1234_2')).toBe('/sched/workers/10.0.0.1:1234_2');
    expect(p.election).toBe('/sched/election');
    expect(p.lock('failover')).toBe('/sched/locks/failover');
    expect(p.failoverRecord('worker', 'h:1_2')).toBe('/sched/failover-finish-nodes/worker/h:1_2');
    expect(new RegistryPaths('/a/b').members('master')).toBe('/a/b/masters');
  });

  it('rejects a bad root or lock name, naming it', () => {
    expect(() => new RegistryPaths('sched')).toThrow(/zk.root: "sched"/);
    expect(() => new RegistryPaths('/sched/')).toThrow(/zk.root/);
    expect(() => new RegistryPaths('/a//b')).toThrow(/zk.root/);
    expect(() => new RegistryPaths('/sched').lock('a/b')).toThrow(/lock name "a\/b"/);
  });
});

describe('digest auth', () => {
  it('parses user:password (the password may contain colons) and rejects anything else', () => {
    expect(parseDigestAuth('sched:pa:ss')).toEqual({ user: 'sched', password: 'pa:ss' });
    expect(() => parseDigestAuth('nopassword')).toThrow(/zk.auth: expected "user:password"/);
    expect(() => parseDigestAuth(':x')).toThrow(/zk.auth/);
    expect(() => parseDigestAuth('x:')).toThrow(/zk.auth/);
  });

  it('computes the digest id ZooKeeper expects (user:base64(sha1(user:password)))', () => {
    // Known value from ZooKeeper's DigestAuthenticationProvider for super:test.
    expect(digestId({ user: 'super', password: 'test' })).toBe('super:D/InIHSb7yEEbrWz8b9l71RjZJU=');
    const acls = schedAcls({ user: 'u', password: 'p' }, true);
    // (the runtime field is `permission`; the DefinitelyTyped typings call it `perms`)
    expect(acls.map((a) => `${a.id.scheme}:${(a as unknown as { permission: number }).permission}`)).toEqual([
      'digest:31',
      'world:1',
    ]);
    expect(schedAcls({ user: 'u', password: 'p' }, false)).toHaveLength(1);
  });
});

describe('ACL states', () => {
  it('open (world may more than read), own (this identity has every right), foreign (anything else)', () => {
    const me = { user: 'sched', password: 'pw' };
    const mine = schedAcls(me, false);
    const id = digestId(me);
    expect(aclState(mine, id)).toBe('own');
    expect(aclState(schedAcls(me, true), id)).toBe('own'); // world READ is not open
    expect(aclState(OPEN_ACL, id)).toBe('open');
    expect(aclState([...mine, ...OPEN_ACL], id)).toBe('open');
    expect(aclState(mine, digestId({ user: 'sched', password: 'other' }))).toBe('foreign');
    expect(aclState(mine, undefined)).toBe('foreign');
    const readOnly = [new zookeeper.ACL(zookeeper.Permission.READ, new zookeeper.Id('digest', id))];
    expect(aclState(readOnly, id)).toBe('foreign');
  });

  it('formats an ACL by user and rights, never the digest; compares ACLs ignoring order', () => {
    const me = { user: 'sched', password: 'pw' };
    expect(formatAcls(schedAcls(me, true))).toBe('digest:sched=cdrwa, world:anyone=r');
    expect(formatAcls(schedAcls(me, true))).not.toContain(digestId(me).split(':')[1]);
    expect(formatAcls(OPEN_ACL)).toBe('world:anyone=cdrwa');
    expect(sameAcls(schedAcls(me, true), [...schedAcls(me, true)].reverse())).toBe(true);
    expect(sameAcls(schedAcls(me, true), schedAcls(me, false))).toBe(false);
  });
});

describe('parseSequentialName', () => {
  it('splits {guid}-{suffix}{sequence}', () => {
    const guid = '0f0e0d0c-0b0a-4909-8807-060504030201';
    expect(parseSequentialName(`${guid}-n_0000000042`)).toEqual({ guid, sequence: 42 });
    expect(parseSequentialName(`${guid}-lock-0000000000`)).toEqual({ guid, sequence: 0 });
    expect(parseSequentialName('n_0000000001')).toBeUndefined();
    expect(parseSequentialName(`${guid}-n_12`)).toBeUndefined();
  });
});

describe('Wakeup', () => {
  it('keeps one pending wake, and times out when nothing comes', async () => {
    const w = new Wakeup();
    w.wake();
    expect(await w.wait(10)).toBe(true);
    expect(await w.wait(10)).toBe(false);
    const waiting = w.wait(1000);
    w.wake();
    expect(await waiting).toBe(true);
    w.wake();
    w.reset();
    expect(await w.wait(10)).toBe(false);
  });
});

describe('heartbeat schema', () => {
  it('accepts added fields and rejects a bad state, naming the field', () => {
    const hb = {
      address: '10.0.0.1:5678',
      startTime: 1,
      pid: 2,
      version: '0.1.0',
      cpu: 0.5,
      memory: 0.5,
      load: 0.1,
      state: 'NORMAL',
      reportedAt: '2024-01-01T00:00:00.000Z',
      extra: true,
    };
    expect(masterHeartbeatSchema.parse(hb)).toMatchObject({ extra: true });
    const bad = masterHeartbeatSchema.safeParse({ ...hb, state: 'SLEEPING' });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0]?.path).toEqual(['state']);
  });
});
