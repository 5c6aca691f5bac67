import zookeeper from 'node-zookeeper-client';
import type { ZkAcl } from './acl.js';
import { fromClientError, ZK_ERROR_NAMES, ZkError } from './errors.js';
import type { CreateModeName, RequestOptions, ZkSession } from './zk-session.js';

/**
 * Atomic multi-operations (ZooKeeper `multi`), with the version kept exactly as given.
 *
 * node-zookeeper-client's `Transaction.check/setData/remove` do `version = version || -1`, so
 * an expected version of 0 (every freshly created node) silently becomes "any version" and
 * the compare-and-set is gone. We let the library build each op record, then overwrite its
 * `version` with ours before the transaction is serialized.
 */
export type MultiOp =
  | { op: 'create'; path: string; data?: Buffer; mode?: CreateModeName; acl?: ZkAcl[] }
  | { op: 'setData'; path: string; data: Buffer; version?: number }
  | { op: 'check'; path: string; version: number }
  | { op: 'remove'; path: string; version?: number };

/** One failed multi: the first op that failed, by index, and every op's result code. */
export class MultiOpError extends ZkError {
  readonly failedIndex: number;
  readonly opCodes: readonly string[];

  constructor(
    zkCode: string,
    failedIndex: number,
    opCodes: readonly string[],
    ops: readonly MultiOp[],
    cause: unknown,
  ) {
    const failed = ops[failedIndex];
    super(zkCode, `ZooKeeper multi failed at op #${failedIndex} (${failed?.op} ${failed?.path}): ${zkCode}`, {
      path: failed?.path,
      cause,
    });
    this.failedIndex = failedIndex;
    this.opCodes = opCodes;
  }
}

const MODES: Record<CreateModeName, number> = {
  persistent: zookeeper.CreateMode.PERSISTENT,
  ephemeral: zookeeper.CreateMode.EPHEMERAL,
  'persistent-sequential': zookeeper.CreateMode.PERSISTENT_SEQUENTIAL,
  'ephemeral-sequential': zookeeper.CreateMode.EPHEMERAL_SEQUENTIAL,
};

interface OpRecord {
  version?: number;
}

interface RawResult {
  type: number;
  err?: number;
  path?: string;
}

/**
 * Runs `ops` atomically. Resolves with, per op, the created path (creates) or `undefined`.
 * @throws MultiOpError naming the first op that failed (e.g. BAD_VERSION of a check)
 */
export async function multi(
  session: ZkSession,
  ops: readonly MultiOp[],
  opts: RequestOptions = {},
): Promise<(string | undefined)[]> {
  if (ops.length === 0) return [];
  return session.request<(string | undefined)[]>('multi', ops[0]?.path, opts, (client, cb) => {
    const tx = client.transaction();
    const records = (tx as unknown as { ops: OpRecord[] }).ops;
    for (const op of ops) {
      switch (op.op) {
        case 'create': {
          const acl = op.acl ?? session.acls;
          const mode = MODES[op.mode ?? 'persistent'];
          if (op.data) tx.create(op.path, op.data, acl, mode);
          else tx.create(op.path, acl, mode);
          break;
        }
        case 'setData':
          tx.setData(op.path, op.data, op.version ?? -1);
          break;
        case 'check':
          tx.check(op.path, op.version);
          break;
        case 'remove':
          tx.remove(op.path, op.version ?? -1);
          break;
      }
      if (op.op !== 'create') {
        const record = records[records.length - 1];
        // The fix for `version || -1`: restore the caller's version (0 stays 0).
        if (record) record.version = op.op === 'check' ? op.version : (op.version ?? -1);
      }
    }
    tx.commit((err, results: RawResult[] | undefined) => {
      if (!err) {
        cb(
          null,
          (results ?? []).map((r) => r.path),
        );
        return;
      }
      if (!Array.isArray(results)) {
        cb(err);
        return;
      }
      const codes = results.map((r) =>
        r.err === undefined || r.err === 0 ? 'OK' : (ZK_ERROR_NAMES[r.err] ?? `ERROR_${r.err}`),
      );
      const index = results.findIndex((r) => r.err !== undefined && r.err !== 0 && r.err !== -2);
      const base = fromClientError(err, 'multi', undefined);
      cb(new MultiOpError(base.zkCode, Math.max(0, index), codes, ops, err));
    });
  });
}
