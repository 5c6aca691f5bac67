// Just enough of ZooKeeper's wire format (jute) to recognise client requests in a proxied
// byte stream, for FaultProxy.cutAfterRequest. Each client frame is
//   int32 length | int32 xid | int32 type | body
// except the first frame of a connection (the ConnectRequest), which has no header.

/** Request op codes (org.apache.zookeeper.ZooDefs.OpCode). */
export const ZkOp = {
  create: 1,
  delete: 2,
  exists: 3,
  getData: 4,
  setData: 5,
  getChildren: 8,
  sync: 9,
  ping: 11,
  getChildren2: 12,
  check: 13,
  multi: 14,
  create2: 15,
  createContainer: 19,
  createTTL: 21,
  closeSession: -11,
} as const;

/** The op codes of every complete request frame in `chunk` (a partial trailing frame is ignored). */
export function zkRequestOps(chunk: Buffer): number[] {
  const ops: number[] = [];
  let offset = 0;
  while (offset + 12 <= chunk.length) {
    const length = chunk.readInt32BE(offset);
    if (length < 8) break;
    ops.push(chunk.readInt32BE(offset + 8));
    offset += 4 + length;
  }
  return ops;
}

/**
 * A FaultProxy request matcher for ZooKeeper: true for a chunk carrying one of `ops`.
 * Skips each connection's first chunk (the ConnectRequest, which has no request header).
 */
export function zkRequestMatcher(...ops: number[]): (chunk: Buffer, info: { chunkIndex: number }) => boolean {
  return (chunk, { chunkIndex }) => chunkIndex > 0 && zkRequestOps(chunk).some((op) => ops.includes(op));
}
