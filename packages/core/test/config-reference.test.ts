import { readFileSync } from 'node:fs';
import { describeConfig, envTable, renderConfigReference } from '@sched/core';
import { describe, expect, test } from 'vitest';

describe('configuration reference', () => {
  test('docs/configuration.md is the generated reference (regenerate it when the schema changes)', () => {
    const checkedIn = readFileSync(new URL('../../../docs/configuration.md', import.meta.url), 'utf8');
    // On failure: npx tsc -b packages/core && node packages/core/scripts/write-config-reference.mjs
    expect(checkedIn).toBe(renderConfigReference());
  });

  test('every setting is documented with a path, type and description; env variables are unique', () => {
    const rows = describeConfig();
    expect(rows.length).toBeGreaterThanOrEqual(19);
    for (const row of rows) {
      expect(row.path).toMatch(/^[a-z]+\.[a-zA-Z]+$/);
      expect(row.type.length).toBeGreaterThan(0);
      expect(row.description.length).toBeGreaterThan(10);
    }
    const envs = rows.flatMap((r) => (r.env ? [r.env] : []));
    expect(new Set(envs).size).toBe(envs.length);
  });

  test('the documented SCHED_* variables map to their settings', () => {
    const table = Object.fromEntries(envTable().map((r) => [r.env, r.path]));
    expect(table).toMatchObject({
      SCHED_ZK: 'zk.connect',
      SCHED_ZK_ROOT: 'zk.root',
      SCHED_ZK_SESSION_TIMEOUT: 'zk.sessionTimeout',
      SCHED_ZK_AUTH: 'zk.auth',
      SCHED_DB_URL: 'db.url',
      SCHED_CLUSTER_SECRET: 'cluster.secret',
      SCHED_HOST: 'node.host',
      SCHED_PORT: 'node.port',
      SCHED_FAILOVER_DELAY: 'failover.delay',
      SCHED_DATA_DIR: 'node.dataDir',
      SCHED_WORKER_GROUPS: 'worker.groups',
    });
  });
});
