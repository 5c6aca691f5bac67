import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AttemptReport } from '@sched/protocol';
import { expect, test } from 'vitest';
import { httpReportTransport } from '../src/reporting/http-report-transport.js';

const report = (reportId: string): AttemptReport => ({
  reportId,
  seq: 1,
  kind: 'running',
  attemptId: 'x',
  runId: '1',
  taskName: 't',
  attempt: 1,
  worker: '127.0.0.1:1_1',
  at: new Date().toISOString(),
  startedAt: new Date().toISOString(),
  result: null,
});

async function masterAnswering(status: number, body: unknown) {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, address: `127.0.0.1:${(server.address() as AddressInfo).port}` };
}

test('a 422 listing every report as rejected is a final answer (the reports are dropped, not retried)', async () => {
  const answer = {
    error: { code: 'REPORTS_INVALID', message: 'x' },
    acked: [],
    rejected: [{ reportId: 'r1', code: 'REPORT_INVALID', message: 'bad' }],
  };
  const { server, address } = await masterAnswering(422, answer);
  try {
    const send = httpReportTransport({ masters: () => [address], secret: 's' });
    expect(await send([report('r1')])).toEqual({ acked: [], rejected: answer.rejected });
  } finally {
    server.close();
  }
});

test('any other 4xx/5xx is not an answer: the batch is retried later', async () => {
  const { server, address } = await masterAnswering(400, {
    error: { code: 'REQUEST_INVALID', message: 'x' },
  });
  try {
    const send = httpReportTransport({ masters: () => [address], secret: 's' });
    await expect(send([report('r1')])).rejects.toThrow(/no master took the reports/);
  } finally {
    server.close();
  }
});
