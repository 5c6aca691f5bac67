import type { Logger } from '@sched/core';
import type { LeadershipTerm } from '@sched/registry';
import {
  advanceLeaderEpoch,
  type LeaderEpoch,
  type RecordedLeaderEpoch,
  readLeaderEpoch,
  takeOverLeaderEpoch,
  withTransaction,
} from '@sched/store';
import type pg from 'pg';
import { forgetFailoverRecords } from './failover-queries.js';

/**
 * Records a leadership term's epoch in PostgreSQL before the leader acts (docs/design.md#fencing,
 * docs/decisions/0006-leader-epoch-zookeeper-generation.md). The epoch is the pair (ZooKeeper
 * cluster id, czxid of the term's candidate znode); czxids compare only under one cluster id.
 *
 * | recorded epoch                                | what the term does                                  |
 * |-----------------------------------------------|-----------------------------------------------------|
 * | same cluster id (or none yet), older czxid    | advances it (`advanceLeaderEpoch`) and leads        |
 * | same cluster id, newer or equal czxid         | gives the term up (a newer leader is recorded)      |
 * | our cluster id is retired                     | refuses to lead, loudly; gives the term up after `takeoverWaitMs` |
 * | another cluster id (ZooKeeper reset/replaced) | logs it loudly, waits `takeoverWaitMs` with the recorded epoch unchanged, then takes it over (compare-and-set; the old id is retired; every failover record is written again) and leads |
 *
 * `takeoverWaitMs` is the session timeout plus the failover delay: a leader of the old ZooKeeper
 * lost its session when that ZooKeeper went, so its term (SUSPENDED, then LOST at most T after
 * its last answer) is over by then, and a change of the recorded epoch during the wait (the old
 * ZooKeeper still elects leaders) starts the wait again. Fencing is kept throughout: every
 * leader-only transaction share-locks the row on the exact pair (`lockLeaderEpoch`), so after a
 * takeover no transaction of an old-ZooKeeper term can write, and the takeover's UPDATE waits
 * for one still in flight.
 */
export interface ClaimLeaderEpochOptions {
  pool: pg.Pool;
  term: LeadershipTerm;
  /** This master's incarnation key (`cluster_state.leader_key`). */
  nodeKey: string;
  /** How long the recorded epoch of another ZooKeeper must stay unchanged before a takeover: T + D. */
  takeoverWaitMs: number;
  /** `{root}/cluster-id`, for the operator's instructions in the log. */
  clusterIdPath: string;
  logger: Logger;
}

/** The term's epoch once recorded; undefined when the term must be given up (see the table above). */
export async function claimLeaderEpoch(opts: ClaimLeaderEpochOptions): Promise<LeaderEpoch | undefined> {
  const { pool, term, nodeKey, takeoverWaitMs, logger: log } = opts;
  const epoch: LeaderEpoch = { clusterId: term.clusterId, czxid: Number(term.token) };
  for (;;) {
    if (term.signal.aborted) return undefined;
    const recorded = await readLeaderEpoch(pool);
    if (recorded.retired.includes(epoch.clusterId)) {
      log.error(
        { clusterId: epoch.clusterId, recordedClusterId: recorded.clusterId, waitMs: takeoverWaitMs },
        `this ZooKeeper's cluster id ${epoch.clusterId} was retired when ZooKeeper ${recorded.clusterId} took leadership over: ` +
          'refusing to lead from it. Every sched daemon must use the same ZooKeeper; if this one is the right one ' +
          `(its data restored from a backup), delete ${opts.clusterIdPath} on it and a new id takes over`,
      );
      await waitUnlessEnded(term, takeoverWaitMs);
      return undefined;
    }
    if (sameZooKeeper(recorded, epoch)) {
      if (await advanceLeaderEpoch(pool, epoch, nodeKey)) return epoch;
      const now = await readLeaderEpoch(pool);
      if (now.clusterId === epoch.clusterId) {
        log.warn(
          { epoch: epoch.czxid, recorded: now.czxid, clusterId: epoch.clusterId },
          'a newer leader epoch is already recorded; giving up this term',
        );
        return undefined;
      }
      continue; // recorded by another ZooKeeper's leader meanwhile: look again
    }
    // Another ZooKeeper's epoch: this one was reset or replaced (or the epoch predates the ids
    // and this ZooKeeper's czxids are below it).
    log.error(
      {
        clusterId: epoch.clusterId,
        czxid: epoch.czxid,
        recordedClusterId: recorded.clusterId,
        recordedCzxid: recorded.czxid,
        recordedLeader: recorded.leaderKey,
        recordedAt: recorded.updatedAt.toISOString(),
        waitMs: takeoverWaitMs,
      },
      `ZooKeeper's cluster id ${epoch.clusterId} differs from the one recorded with the leader epoch ` +
        `(${recorded.clusterId ?? `none, and czxid ${epoch.czxid} is not above ${recorded.czxid}`}): ` +
        `ZooKeeper's data was reset or this is another ensemble. Taking leadership over in ${takeoverWaitMs} ms ` +
        'unless the recorded epoch changes meanwhile (a leader of the old ZooKeeper has fenced itself by then); ' +
        `ZooKeeper ${recorded.clusterId ?? '(unnamed)'} will never lead again`,
    );
    if (!(await waitUnlessEnded(term, takeoverWaitMs))) return undefined;
    term.check();
    const took = await withTransaction(pool, async (tx) => {
      if (!(await takeOverLeaderEpoch(tx, epoch, nodeKey, recorded))) return undefined;
      // The records were in the lost ZooKeeper data: the failover sweep writes them again.
      return { records: await forgetFailoverRecords(tx) };
    });
    if (took) {
      log.warn(
        {
          clusterId: epoch.clusterId,
          czxid: epoch.czxid,
          retiredClusterId: recorded.clusterId,
          rewrittenRecords: took.records,
        },
        `took leadership over for ZooKeeper ${epoch.clusterId} (epoch ${epoch.czxid}); ` +
          `ZooKeeper ${recorded.clusterId ?? '(unnamed)'} is retired; ${took.records} failover record(s) will be written again`,
      );
      return epoch;
    }
    log.warn(
      { clusterId: epoch.clusterId },
      'the recorded leader epoch changed while waiting to take it over; looking again',
    );
  }
}

/** Whether `recorded` orders against `epoch` by czxid: the same ZooKeeper, or none recorded yet below it. */
function sameZooKeeper(recorded: RecordedLeaderEpoch, epoch: LeaderEpoch): boolean {
  if (recorded.clusterId === null) return recorded.czxid < epoch.czxid;
  return recorded.clusterId === epoch.clusterId;
}

/** Sleeps `ms`; false when the term ended first. */
function waitUnlessEnded(term: LeadershipTerm, ms: number): Promise<boolean> {
  if (term.signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      term.signal.removeEventListener('abort', onAbort);
      resolve(!term.signal.aborted);
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    term.signal.addEventListener('abort', onAbort, { once: true });
  });
}
