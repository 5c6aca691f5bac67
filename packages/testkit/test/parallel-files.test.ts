import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { processExists } from '../src/index.js';

interface Record {
  name: string;
  startedAt: number;
  endedAt: number;
  workerPid: number;
  zk: { port: number; dataDir: string; pid: number };
  pg: { port: number; dataDir: string; pid: number };
}

// A nested vitest run with two servers per file: slow on a loaded machine.
it('two test files that each start ZooKeeper and PostgreSQL run in parallel without clashes', {
  timeout: 150_000,
}, async () => {
  const root = fileURLToPath(new URL('../../..', import.meta.url));
  const config = fileURLToPath(new URL('./fixtures/vitest.fixture.config.ts', import.meta.url));
  const recordDir = mkdtempSync(join(tmpdir(), 'sched-parallel-'));
  const report = join(recordDir, 'report.json');
  const started = performance.now();
  const output = await new Promise<string>((resolve) => {
    execFile(
      process.execPath,
      [
        join(root, 'node_modules/vitest/vitest.mjs'),
        'run',
        '--config',
        config,
        '--reporter=json',
        `--outputFile=${report}`,
        'parallel-',
      ],
      { cwd: root, env: { ...process.env, FIXTURE_RECORD_DIR: recordDir }, timeout: 120_000 },
      (_error, stdout, stderr) => resolve(`${stdout}\n${stderr}`),
    );
  });
  console.log(
    `[measure] two parallel files with private ZooKeeper+PostgreSQL: ${Math.round(performance.now() - started)} ms`,
  );
  const results = JSON.parse(readFileSync(report, 'utf8')) as {
    numPassedTests: number;
    numFailedTests: number;
  };
  expect(results, output).toMatchObject({ numPassedTests: 2, numFailedTests: 0 });

  const a = JSON.parse(readFileSync(join(recordDir, 'a.json'), 'utf8')) as Record;
  const b = JSON.parse(readFileSync(join(recordDir, 'b.json'), 'utf8')) as Record;
  // Really in parallel: two worker processes whose server lifetimes overlapped.
  expect(a.workerPid).not.toBe(b.workerPid);
  expect(a.startedAt < b.endedAt && b.startedAt < a.endedAt).toBe(true);
  // No shared port or folder.
  expect(new Set([a.zk.port, a.pg.port, b.zk.port, b.pg.port]).size).toBe(4);
  expect(a.zk.dataDir).not.toBe(b.zk.dataDir);
  expect(a.pg.dataDir).not.toBe(b.pg.dataDir);
  // And their servers are gone now that the files have ended.
  for (const pid of [a.zk.pid, a.pg.pid, b.zk.pid, b.pg.pid]) expect(processExists(pid)).toBe(false);
});
