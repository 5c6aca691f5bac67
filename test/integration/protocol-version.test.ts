/**
 * The protocol version on both sides of the master ↔ worker transport, over real HTTP: a master
 * refuses reports from a worker of another version, and a master's dispatch refused by a worker of
 * another version comes back as a refusal with that code (nothing ran, the attempt goes elsewhere).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLogger } from '@sched/core';
import { HttpWorkerClient, MasterHttpServer, reportRoutes } from '@sched/master';
import {
  type AttemptReport,
  PROTOCOL_HEADER,
  PROTOCOL_VERSION,
  protocolMismatch,
  WireError,
} from '@sched/protocol';
import { describe, expect, test } from 'vitest';

const SECRET = 'protocol-version-secret-0123456789';

const report: AttemptReport = {
  reportId: 'r-1',
  seq: 1,
  kind: 'running',
  attemptId: '41',
  runId: '7',
  taskName: 't',
  attempt: 1,
  worker: '127.0.0.1:9_1',
  at: new Date().toISOString(),
  startedAt: new Date().toISOString(),
  result: null,
};

describe('protocol version', () => {
  test('a master refuses reports of a worker of another version, before applying anything', async () => {
    const applied: AttemptReport[][] = [];
    const server = new MasterHttpServer({
      secret: SECRET,
      logger: createLogger({ level: 'silent' }),
      routes: reportRoutes({
        apply: async (reports) => {
          applied.push(reports);
          return { applied: reports.map((r) => r.reportId), stale: [], invalid: [] };
        },
      }),
    });
    const { port } = await server.listen(0, '127.0.0.1');
    try {
      const post = (version: string | undefined, body = JSON.stringify({ reports: [report] })) =>
        fetch(`http://127.0.0.1:${port}/v1/reports`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${SECRET}`,
            'content-type': 'application/json',
            ...(version === undefined ? {} : { [PROTOCOL_HEADER]: version }),
          },
          body,
        });
      for (const version of [undefined, String(PROTOCOL_VERSION + 1)]) {
        const res = await post(version);
        expect(res.status).toBe(400);
        const body = (await res.json()) as { error: { code: string; message: string } };
        expect(body.error.code).toBe(WireError.ProtocolMismatch);
        expect(body.error.message).toContain(`this master speaks ${PROTOCOL_VERSION}`);
      }
      // Refused on its header, before the body is read: even a body this version cannot parse.
      const garbled = await post(String(PROTOCOL_VERSION + 1), '{"reports": [ not json');
      expect(garbled.status).toBe(400);
      expect(((await garbled.json()) as { error: { code: string } }).error.code).toBe(
        WireError.ProtocolMismatch,
      );
      expect(applied).toEqual([]);
      const ok = await post(String(PROTOCOL_VERSION));
      expect(ok.status).toBe(200);
      expect(await ok.json()).toEqual({ acked: ['r-1'], rejected: [] });
      expect(applied).toHaveLength(1);
    } finally {
      await server.close();
    }
  });

  test('a dispatch refused by a worker of another version is a refusal with PROTOCOL_MISMATCH', async () => {
    // A worker of a newer version: it refuses whatever this master sends, as ours would.
    const seen: (string | undefined)[] = [];
    const worker = createServer((req, res) => {
      seen.push(req.headers[PROTOCOL_HEADER] as string | undefined);
      const message = protocolMismatch('99', 'master') ?? '';
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: WireError.ProtocolMismatch, message } }));
    });
    await new Promise<void>((r) => worker.listen(0, '127.0.0.1', r));
    const client = new HttpWorkerClient({ secret: SECRET });
    try {
      const address = `127.0.0.1:${(worker.address() as AddressInfo).port}`;
      const answers = await client.dispatch(address, [
        {
          attemptId: '5',
          runId: '1',
          taskName: 't',
          attempt: 1,
          fireTime: null,
          shardIndex: 0,
          shardTotal: 1,
          idempotencyKey: '1/t/0',
          params: {},
          timeoutMs: null,
          worker: null,
          registration: null,
          dispatchSeq: 1,
          task: { type: 'noop' },
        },
      ]);
      expect(seen).toEqual([String(PROTOCOL_VERSION)]);
      expect(answers).toEqual([
        {
          attemptId: '5',
          outcome: 'refused',
          code: WireError.ProtocolMismatch,
          message: expect.stringContaining('sched protocol "99"'),
        },
      ]);
    } finally {
      client.close();
      worker.close();
    }
  });
});
