import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AttemptReport } from '@sched/protocol';
import { eventually, spawnProcess } from '@sched/testkit';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { tempDir } from './helpers.js';

/**
 * kill -9 of a worker process while reports are being spooled and the master is failing:
 * every report the worker had made durable is delivered after the worker restarts on the same
 * data directory. Runs the built package (dist/), as daemons in tests do.
 */
const SECRET = 'spool-crash-secret-0123456789abcdef';
const fixture = fileURLToPath(new URL('./fixtures/spooling-worker.mjs', import.meta.url));
const built = fileURLToPath(new URL('../dist/index.js', import.meta.url));

let dir: Awaited<ReturnType<typeof tempDir>>;
let server: Server;
let address: string;
let mode: 'fail' | 'ack' = 'fail';
const acked = new Map<string, number>();

beforeAll(async () => {
  dir = await tempDir('spool-crash');
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      if (mode === 'fail') return void res.writeHead(503).end('{"error":{"code":"DOWN","message":"down"}}');
      const { reports } = JSON.parse(body) as { reports: AttemptReport[] };
      for (const r of reports) acked.set(r.reportId, (acked.get(r.reportId) ?? 0) + 1);
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ acked: reports.map((r) => r.reportId) }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  await dir.remove();
});

test('kill -9 mid-spooling: every durable report is delivered by the restarted worker', async () => {
  expect(existsSync(built), 'the worker package must be built (npx tsc -b packages/worker)').toBe(true);
  const spool = join(dir.path, 'spool');
  const first = spawnProcess(process.execPath, [fixture, spool, address, SECRET, '100000'], {
    name: 'worker-1',
  });
  // Let it spool a good number of reports while the master refuses them, then kill it mid-write.
  await eventually(() => expect(first.output().match(/^spooled /gm)?.length ?? 0).toBeGreaterThan(300), {
    timeoutMs: 30_000,
  });
  await first.kill9();
  const durable = [...first.output().matchAll(/^spooled (\S+)$/gm)].map((m) => m[1] as string);
  expect(durable.length).toBeGreaterThan(300);
  expect(acked.size).toBe(0);

  mode = 'ack';
  const second = spawnProcess(process.execPath, [fixture, spool, address, SECRET, '10'], {
    name: 'worker-2',
  });
  const started = await second.waitForOutput(/started replayed=(\d+)/, 30_000);
  expect(Number(/replayed=(\d+)/.exec(started)?.[1])).toBeGreaterThanOrEqual(durable.length);
  await second.waitForOutput(/^drained$/m, 60_000);
  expect((await second.exited).code).toBe(0);

  const missing = durable.filter((id) => !acked.has(id));
  expect(missing).toEqual([]);
  // Acked reports are not sent again (nothing was acked before the crash, so at most once each).
  expect([...acked.values()].every((n) => n === 1)).toBe(true);
}, 120_000);
