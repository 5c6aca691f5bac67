// The example files in deploy/ must stay valid: the config files load with the real schema and
// the example workflows pass the real definition validation.
import { fileURLToPath } from 'node:url';
import { loadConfig } from '@sched/core';
import { loadDefinitionPath } from '@sched/store';
import { expect, test } from 'vitest';

const deploy = (p: string) => fileURLToPath(new URL(`../../../deploy/${p}`, import.meta.url));

test('deploy/config/*.yaml load with the configuration schema', () => {
  const master = loadConfig({ file: deploy('config/master.yaml'), env: {} });
  expect(master.zk.sessionTimeoutMs).toBe(10_000);
  expect(master.node.port).toBe(5700);
  const worker = loadConfig({ file: deploy('config/worker.yaml'), env: {} });
  expect(worker.worker.groups).toEqual(['default', 'etl']);
  expect(worker.worker.capacity).toBe(16);
});

test('deploy/examples/ validate as workflow definitions', async () => {
  const defs = await loadDefinitionPath(deploy('examples'));
  expect(defs.map((d) => d.name).sort()).toEqual(['hello', 'nightly-report']);
  expect(defs.find((d) => d.name === 'hello')?.schedule?.cron).toBe('*/5 * * * * ?');
});
