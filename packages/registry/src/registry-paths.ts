import { SchedError } from '@sched/core';

/**
 * The znode layout (docs/design.md#znodes), under a configurable root (default `/sched`; a chroot
 * in the connect string composes with it).
 *
 * | path                                               | kind                 |
 * |----------------------------------------------------|----------------------|
 * | {root}/masters/{host:port_startTime}               | ephemeral, heartbeat |
 * | {root}/workers/{host:port_startTime}               | ephemeral, heartbeat |
 * | {root}/election/{guid}-n_{seq}                     | ephemeral sequential |
 * | {root}/locks/{name}/{guid}-lock-{seq}              | ephemeral sequential |
 * | {root}/failover-finish-nodes/{role}/{key}          | persistent, JSON     |
 */
export type MemberRole = 'master' | 'worker';

export class RegistryPaths {
  readonly root: string;

  constructor(root = '/sched') {
    if (!/^\/[A-Za-z0-9._\-/]*[A-Za-z0-9._-]$/.test(root) || root.includes('//')) {
      throw new SchedError(
        'CONFIG_INVALID',
        `zk.root: ${JSON.stringify(root)} is not an absolute znode path like /sched`,
      );
    }
    this.root = root;
  }

  members(role: MemberRole): string {
    return `${this.root}/${role === 'master' ? 'masters' : 'workers'}`;
  }

  member(role: MemberRole, key: string): string {
    return `${this.members(role)}/${key}`;
  }

  get election(): string {
    return `${this.root}/election`;
  }

  get locks(): string {
    return `${this.root}/locks`;
  }

  lock(name: string): string {
    if (!/^[A-Za-z0-9._-]+$/.test(name)) {
      throw new SchedError(
        'LOCK_NAME_INVALID',
        `lock name ${JSON.stringify(name)}: use letters, digits, '.', '_' or '-'`,
      );
    }
    return `${this.locks}/${name}`;
  }

  get failoverFinishNodes(): string {
    return `${this.root}/failover-finish-nodes`;
  }

  failoverRecords(role: MemberRole): string {
    return `${this.failoverFinishNodes}/${role}`;
  }

  failoverRecord(role: MemberRole, key: string): string {
    return `${this.failoverRecords(role)}/${key}`;
  }

  /** The persistent parents sched needs. */
  get parents(): string[] {
    return [
      this.members('master'),
      this.members('worker'),
      this.election,
      this.locks,
      this.failoverRecords('master'),
      this.failoverRecords('worker'),
    ];
  }
}
