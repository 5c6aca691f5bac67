// Runs the real `sched-ctl` binary (packages/cli/dist, built by `npx tsc -b`) as a child process
// and captures its exit code and output; bounded in time so a hanging command fails the test.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { assertContract, type RecordedResponse } from './api-contract.js';
import { binaries, type TestCluster } from './cluster.js';

const recorder = pathToFileURL(join(import.meta.dirname, 'api-recorder.mjs')).href;

export interface CtlResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
  /** The master responses the command received, each checked against the OpenAPI document. */
  apiResponses: RecordedResponse[];
}

/** An empty working folder: no `.sched-data/standalone.json` unless a test writes one. */
export function emptyDir(): string {
  return mkdtempSync(join(tmpdir(), 'sched-ctl-'));
}

const plainEnv = (): Record<string, string> => {
  // The test runner's own SCHED_* variables (if any) must not leak into the command.
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env))
    if (!k.startsWith('SCHED_') && v !== undefined) env[k] = v;
  return env;
};

/**
 * Runs sched-ctl. Every response it gets from a master is recorded (api-recorder.mjs) and checked
 * against the OpenAPI document the masters serve: a response the document does not describe
 * fails the calling test.
 */
export async function runCtl(
  args: string[],
  opts: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {},
): Promise<CtlResult> {
  const started = Date.now();
  const recordDir = mkdtempSync(join(tmpdir(), 'sched-ctl-api-'));
  const record = join(recordDir, 'responses.jsonl');
  const result = await new Promise<CtlResult>((resolve) => {
    execFile(
      process.execPath,
      [binaries.ctl, ...args],
      {
        env: {
          ...plainEnv(),
          NODE_OPTIONS: `--import=${recorder}`,
          SCHED_TEST_API_RECORD: record,
          ...opts.env,
        },
        cwd: opts.cwd ?? emptyDir(),
        timeout: opts.timeoutMs ?? 45_000,
        killSignal: 'SIGKILL',
        maxBuffer: 16 * 1024 * 1024,
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
        resolve({ code, stdout, stderr, ms: Date.now() - started, apiResponses: [] });
      },
    );
  });
  const responses: RecordedResponse[] = existsSync(record)
    ? readFileSync(record, 'utf8')
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l) as RecordedResponse)
    : [];
  rmSync(recordDir, { recursive: true, force: true });
  assertContract(responses, `sched-ctl ${args.join(' ')}`);
  return { ...result, apiResponses: responses };
}

/** Variables that point sched-ctl at a test cluster. */
export function ctlEnv(cluster: TestCluster): Record<string, string> {
  return {
    SCHED_ZK: cluster.zkChrooted,
    SCHED_ZK_AUTH: cluster.zkAuth,
    SCHED_CLUSTER_SECRET: cluster.secret,
    SCHED_DB_URL: cluster.dbUrl,
  };
}

/** Runs sched-ctl and expects exit 0 with JSON on stdout; throws with the output otherwise. */
export async function ctlJson<T>(cluster: TestCluster, args: string[]): Promise<T> {
  const r = await runCtl([...args, '--json'], { env: ctlEnv(cluster) });
  if (r.code !== 0) {
    throw new Error(`sched-ctl ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`sched-ctl ${args.join(' ')} printed no JSON: ${r.stdout}`);
  }
}
