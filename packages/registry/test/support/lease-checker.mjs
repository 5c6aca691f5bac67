// A child process for the pause test: holds a ZkSession (from the built dist/) and, every
// 50 ms, does a "side effect" guarded by checkLease(), printing what it did with the epoch time.
import { performance } from 'node:perf_hooks';
import { ZkSession } from '../../dist/index.js';

const [connectString, timeout] = process.argv.slice(2);
const now = () => (performance.timeOrigin + performance.now()).toFixed(1);
const session = await ZkSession.connect({ connectString, sessionTimeoutMs: Number(timeout) });
session.on('status', (s) => process.stdout.write(`status ${s.kind} ${now()}\n`));
await session.create('/paused-node', undefined, { mode: 'ephemeral' });
process.stdout.write(`ready ${session.sessionId} ${now()}\n`);
setInterval(() => {
  try {
    session.checkLease();
    process.stdout.write(`acted ${now()}\n`);
  } catch (err) {
    process.stdout.write(`refused ${err.code} ${now()}\n`);
  }
}, 50);
