// Runs the real `sched-ctl` binary (packages/cli/dist, built by `npx tsc -b`) as a child process
// and captures its exit code and output; bounded in time so a hanging command fails the test.
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { binaries, type TestCluster } from './cluster.js';

export interface CtlResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
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

export function runCtl(
  args: string[],
  opts: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {},
): Promise<CtlResult> {
  const started = Date.now();
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [binaries.ctl, ...args],
      {
        env: { ...plainEnv(), ...opts.env },
        cwd: opts.cwd ?? emptyDir(),
        timeout: opts.timeoutMs ?? 45_000,
        killSignal: 'SIGKILL',
        maxBuffer: 16 * 1024 * 1024,
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
        resolve({ code, stdout, stderr, ms: Date.now() - started });
      },
    );
  });
}

/** Variables that point sched-ctl at a test cluster. */
export function ctlEnv(cluster: TestCluster): Record<string, string> {
  return {
    SCHED_ZK: cluster.zkChrooted,
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
