import type { Stat as RawStat } from 'node-zookeeper-client';

/**
 * A znode's Stat with the 64-bit fields as numbers sched can compare: zxids as `bigint`
 * (they are fencing tokens and must not lose precision), times as epoch ms, and the owning
 * session as the same hex string `ZkSession.sessionId` uses. node-zookeeper-client hands
 * these fields over as 8-byte Buffers.
 */
export interface ZnodeStat {
  czxid: bigint;
  mzxid: bigint;
  pzxid: bigint;
  /** Epoch ms of creation. */
  ctime: number;
  /** Epoch ms of the last data change. */
  mtime: number;
  version: number;
  cversion: number;
  aversion: number;
  /** Hex session id of the owner for an ephemeral node, `undefined` for a persistent one. */
  ephemeralOwner: string | undefined;
  dataLength: number;
  numChildren: number;
}

const NO_OWNER = '0000000000000000';

export function toZnodeStat(raw: RawStat): ZnodeStat {
  const owner = raw.ephemeralOwner.toString('hex');
  return {
    czxid: raw.czxid.readBigInt64BE(0),
    mzxid: raw.mzxid.readBigInt64BE(0),
    pzxid: raw.pzxid.readBigInt64BE(0),
    ctime: Number(raw.ctime.readBigInt64BE(0)),
    mtime: Number(raw.mtime.readBigInt64BE(0)),
    version: raw.version,
    cversion: raw.cversion,
    aversion: raw.aversion,
    ephemeralOwner: owner === NO_OWNER ? undefined : owner,
    dataLength: raw.dataLength,
    numChildren: raw.numChildren,
  };
}
