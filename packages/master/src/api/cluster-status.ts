import { type Clock, parseIncarnationKey, systemClock } from '@sched/core';
import {
  type FailoverRecord,
  FailoverRecords,
  isZkError,
  parseSequentialName,
  type RegistryPaths,
  type ZkSession,
} from '@sched/registry';
import type { ClusterStatusJson, FailoverRecordJson } from './api-schemas.js';

export type {
  ClusterStatusJson,
  FailoverRecordJson,
  MasterStatusJson,
  WorkerStatusJson,
} from './api-schemas.js';

/**
 * What an operator needs to see in seconds: who leads, who is alive, how loaded, and
 * what was failed over. Read straight from ZooKeeper (not from a master's cached view), so
 * `sched-ctl cluster status` works even when no master answers, and a master's REST API answers
 * the same thing. JSON shapes: docs/design.md#contract and docs/cli.md (fields may be added, never renamed).
 */

type Raw = Record<string, unknown>;

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);

/** Children of `path` with their parsed JSON data; unreadable or vanished children are skipped. */
async function readChildren(session: ZkSession, path: string): Promise<{ name: string; data: Raw }[]> {
  let children: string[];
  try {
    ({ children } = await session.getChildren(path));
  } catch (err) {
    if (isZkError(err, 'NO_NODE')) return [];
    throw err;
  }
  const out = await Promise.all(
    children.sort().map(async (name) => {
      try {
        const { data } = await session.getData(`${path}/${name}`);
        const parsed: unknown = JSON.parse(data.toString('utf8'));
        return parsed !== null && typeof parsed === 'object' ? { name, data: parsed as Raw } : null;
      } catch {
        return null; // gone meanwhile, or not JSON: not a member we can describe
      }
    }),
  );
  return out.filter((x): x is { name: string; data: Raw } => x !== null);
}

/**
 * The incarnation key held by the lowest election candidate: the leader (or the master about to
 * become leader; a candidate leads once its lease is checked, which takes milliseconds).
 */
export async function readLeaderKey(session: ZkSession, paths: RegistryPaths): Promise<string | null> {
  let children: string[];
  try {
    ({ children } = await session.getChildren(paths.election));
  } catch (err) {
    if (isZkError(err, 'NO_NODE')) return null;
    throw err;
  }
  const queue = children
    .map((name) => ({ name, seq: parseSequentialName(name)?.sequence }))
    .filter((c): c is { name: string; seq: number } => c.seq !== undefined)
    .sort((a, b) => a.seq - b.seq);
  for (const c of queue) {
    try {
      const { data } = await session.getData(`${paths.election}/${c.name}`);
      return data.toString('utf8');
    } catch (err) {
      if (!isZkError(err, 'NO_NODE')) throw err; // gone meanwhile: the next one is the leader
    }
  }
  return null;
}

function identity(key: string, data: Raw): { address: string; startTime: number } {
  const address = str(data.address);
  const startTime = num(data.startTime);
  if (address !== null && startTime !== null) return { address, startTime };
  try {
    const parsed = parseIncarnationKey(key);
    return { address: parsed.address, startTime: parsed.startTime };
  } catch {
    return { address: address ?? key, startTime: startTime ?? 0 };
  }
}

function ageMs(reportedAt: string | null, nowMs: number): number | null {
  if (reportedAt === null) return null;
  const t = Date.parse(reportedAt);
  return Number.isFinite(t) ? Math.max(0, nowMs - t) : null;
}

export async function readClusterStatus(
  session: ZkSession,
  paths: RegistryPaths,
  clock: Clock = systemClock,
): Promise<ClusterStatusJson> {
  const [masters, workers, leaderKey] = await Promise.all([
    readChildren(session, paths.members('master')),
    readChildren(session, paths.members('worker')),
    readLeaderKey(session, paths),
  ]);
  const now = clock.now();
  return {
    masters: masters.map(({ name, data }) => {
      const reportedAt = str(data.reportedAt);
      return {
        ...identity(name, data),
        leader: name === leaderKey,
        state: str(data.state) ?? 'UNKNOWN',
        reportedAt,
        key: name,
        pid: num(data.pid),
        version: str(data.version),
        heartbeatAgeMs: ageMs(reportedAt, now),
        cpu: num(data.cpu),
        memory: num(data.memory),
        load: num(data.load),
      };
    }),
    workers: workers.map(({ name, data }) => {
      const reportedAt = str(data.reportedAt);
      return {
        ...identity(name, data),
        groups: Array.isArray(data.groups)
          ? data.groups.filter((g): g is string => typeof g === 'string')
          : [],
        state: str(data.state) ?? 'UNKNOWN',
        running: num(data.running) ?? 0,
        reportedAt,
        key: name,
        pid: num(data.pid),
        version: str(data.version),
        heartbeatAgeMs: ageMs(reportedAt, now),
        capacity: num(data.capacity),
        weight: num(data.weight),
        cpu: num(data.cpu),
        memory: num(data.memory),
        load: num(data.load),
      };
    }),
  };
}

export function failoverRecordJson(key: string, r: FailoverRecord): FailoverRecordJson {
  return {
    role: r.role,
    address: r.address,
    startTime: r.startTime,
    failedOverAt: r.failedOverAt,
    by: r.by,
    key,
    pid: r.pid,
    sessionId: r.sessionId,
    tasks: r.tasks,
    runs: r.runs,
  };
}

/** Every failover record, oldest first. */
export async function listFailoverRecords(
  session: ZkSession,
  paths: RegistryPaths,
): Promise<FailoverRecordJson[]> {
  const records = await new FailoverRecords(session, paths).list();
  return records
    .map(({ key, record }) => failoverRecordJson(key, record))
    .sort((a, b) => (a.failedOverAt < b.failedOverAt ? -1 : a.failedOverAt > b.failedOverAt ? 1 : 0));
}
