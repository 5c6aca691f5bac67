import type { MasterHeartbeat } from '../../src/heartbeat.js';

/** A valid master heartbeat for `127.0.0.1:{port}`, written now. */
export function masterHeartbeat(port: number, state: MasterHeartbeat['state'] = 'NORMAL'): MasterHeartbeat {
  return {
    address: `127.0.0.1:${port}`,
    startTime: 1_700_000_000_000,
    pid: process.pid,
    version: 'test',
    cpu: 0,
    memory: 0,
    load: 0,
    state,
    reportedAt: new Date().toISOString(),
  };
}
