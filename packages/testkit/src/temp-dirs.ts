// All harness data lives under one folder (env SCHED_TEST_TMP, default
// $TMPDIR/sched-testkit): `zk-…` and `pg-…` server folders with their logs, and the
// pristine PostgreSQL cluster that new clusters are copied from. Server folders are kept
// after the run so their logs can be read after a failure (PostgreSQL's bulky data folder is
// removed on a clean stop); folders older than six hours are pruned by the global setup.

import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function testkitRoot(): string {
  const root = process.env.SCHED_TEST_TMP ?? join(tmpdir(), 'sched-testkit');
  mkdirSync(root, { recursive: true });
  // Other users (postgres) must traverse it.
  try {
    chmodSync(root, 0o755);
  } catch {
    // not ours to change; fine if already traversable
  }
  return root;
}

/** A fresh folder `<root>/<kind>-<timestamp>-<random>`. */
export function makeServerDir(kind: string): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '');
  const dir = mkdtempSync(join(testkitRoot(), `${kind}-${stamp}-`));
  chmodSync(dir, 0o755);
  return dir;
}

/** Removes server folders older than `maxAgeMs`; never touches the pristine templates. */
export function pruneOldServerDirs(maxAgeMs = 6 * 3600_000): void {
  const root = testkitRoot();
  const cutoff = Date.now() - maxAgeMs;
  for (const entry of readdirSync(root)) {
    if (!/^(zk|zke|pg)-/.test(entry) || entry.startsWith('pg-template-')) continue;
    const path = join(root, entry);
    try {
      if (statSync(path).mtimeMs < cutoff) rmSync(path, { recursive: true, force: true });
    } catch {
      // raced with another run; ignore
    }
  }
}
