// sched-ctl's configuration layers: flags > environment > .sched-data/standalone.json > defaults,
// and clear errors for a malformed standalone file or a missing secret.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '@sched/core';
import { afterEach, describe, expect, test } from 'vitest';
import { loadCtlConfig, requireDbUrl, requireSecret } from '../src/ctl/ctl-config.js';
import { environmentWithStandalone, readStandaloneInfo } from '../src/ctl/standalone-file.js';

const cwd = process.cwd();
afterEach(() => process.chdir(cwd));

function folderWith(content: string | undefined): string {
  const dir = mkdtempSync(join(tmpdir(), 'sched-ctl-unit-'));
  if (content !== undefined) {
    mkdirSync(join(dir, '.sched-data'));
    writeFileSync(join(dir, '.sched-data', 'standalone.json'), content);
  }
  return dir;
}

describe('standalone.json layer', () => {
  test('fills only what the environment leaves unset', () => {
    const env = environmentWithStandalone(
      { SCHED_ZK: 'env:2181', SCHED_CLUSTER_SECRET: '' },
      {
        zk: 'file:2181',
        secret: 's3cret-0123456789abcdef0123456789abcdef',
        dbUrl: 'postgres://x/y',
        root: '/alt',
      },
    );
    expect(env).toMatchObject({
      SCHED_ZK: 'env:2181',
      SCHED_CLUSTER_SECRET: 's3cret-0123456789abcdef0123456789abcdef',
      SCHED_DB_URL: 'postgres://x/y',
      SCHED_ZK_ROOT: '/alt',
    });
  });

  test('a secret given as a file (SCHED_*_FILE) wins over the standalone file too', () => {
    const dir = folderWith(undefined);
    const file = join(dir, 'secret');
    writeFileSync(file, `${'f'.repeat(40)}\n`);
    const env = environmentWithStandalone(
      { SCHED_CLUSTER_SECRET_FILE: file },
      { secret: 's'.repeat(40), dbUrl: 'postgres://x/y' },
    );
    expect(env.SCHED_CLUSTER_SECRET).toBeUndefined();
    expect(env.SCHED_DB_URL).toBe('postgres://x/y');
    process.chdir(folderWith(JSON.stringify({ secret: 's'.repeat(40) })));
    expect(requireSecret(loadCtlConfig({}, { SCHED_CLUSTER_SECRET_FILE: file }))).toBe('f'.repeat(40));
  });

  test('is read from the working folder; flags win over environment over file', () => {
    process.chdir(
      folderWith(
        JSON.stringify({
          zk: 'file:2181',
          secret: 'from-file-0123456789abcdef0123456789abcdef',
          root: '/alt',
        }),
      ),
    );
    const fromFile = loadCtlConfig({}, {});
    expect(fromFile.config.zk.connect).toBe('file:2181');
    expect(fromFile.config.zk.root).toBe('/alt');
    expect(requireSecret(fromFile)).toBe('from-file-0123456789abcdef0123456789abcdef');
    expect(fromFile.standaloneFile).toBe(true);
    const fromEnv = loadCtlConfig({}, { SCHED_ZK: 'env:2181' });
    expect(fromEnv.config.zk.connect).toBe('env:2181');
    const fromFlag = loadCtlConfig({ zk: 'flag:2181' }, { SCHED_ZK: 'env:2181' });
    expect(fromFlag.config.zk.connect).toBe('flag:2181');
  });

  test('is ignored when --config names a file', () => {
    const dir = folderWith(JSON.stringify({ zk: 'file:2181' }));
    writeFileSync(join(dir, 'sched.yaml'), 'zk:\n  connect: config-file:2181\n');
    process.chdir(dir);
    const c = loadCtlConfig({ config: 'sched.yaml' }, {});
    expect(c.config.zk.connect).toBe('config-file:2181');
    expect(c.standaloneFile).toBe(false);
  });

  test('no file: defaults; a malformed file is a ConfigError naming it', () => {
    expect(readStandaloneInfo(folderWith(undefined))).toBeUndefined();
    expect(() => readStandaloneInfo(folderWith('{ nope'))).toThrow(/standalone\.json is not valid JSON/);
    expect(() => readStandaloneInfo(folderWith('{ "zk": 2181 }'))).toThrow(ConfigError);
    expect(() => readStandaloneInfo(folderWith('[1]'))).toThrow(/must hold a JSON object/);
  });

  test('missing secret and database URL are named with how to set them', () => {
    process.chdir(folderWith(undefined));
    const c = loadCtlConfig({}, {});
    expect(() => requireSecret(c)).toThrow(/SCHED_CLUSTER_SECRET/);
    expect(() => requireDbUrl(c)).toThrow(/SCHED_DB_URL/);
    expect(() => loadCtlConfig({ master: 'not an address' }, {})).toThrow(/--master: expected host:port/);
    expect(() => loadCtlConfig({ connectTimeout: 'soon' }, {})).toThrow(/--connect-timeout/);
  });
});
