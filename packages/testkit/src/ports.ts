import { createServer } from 'node:net';
import { HarnessError } from './errors.js';

/**
 * A loopback TCP port that was free a moment ago (bind port 0, read it, close). Another
 * process can take it before we use it, so servers that bind it retry with a new port on
 * EADDRINUSE.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new HarnessError('TESTKIT_SERVER_START', 'freePort: unexpected server address'));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}
