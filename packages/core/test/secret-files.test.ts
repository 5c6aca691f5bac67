// Secrets from files (issue 14 item 4; docs/security.md#secrets): `SCHED_X_FILE` and systemd
// credentials (`$CREDENTIALS_DIRECTORY/<name>`) for the cluster secret, the ZooKeeper credentials
// and the database URL; clear errors naming the variable and the path; the cluster secret's
// minimum length; and the variables a daemon deletes from its own environment.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ConfigError,
  formatIssues,
  loadConfig,
  scrubSecretEnvironment,
  secretEnvironmentNames,
  secretFileTable,
} from '@sched/core';
import { afterAll, describe, expect, test } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'sched-core-secrets-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SECRET = 'a-cluster-secret-of-more-than-32-bytes';
let n = 0;
function secretFile(content: string, mode = 0o600): string {
  const path = join(dir, `secret-${++n}`);
  writeFileSync(path, content, { mode });
  return path;
}

function issuesOf(load: () => unknown): string {
  try {
    load();
  } catch (err) {
    if (err instanceof ConfigError) return formatIssues(err.issues);
    throw err;
  }
  throw new Error('expected a ConfigError, but the configuration loaded');
}

describe('SCHED_*_FILE', () => {
  test('the table: three secrets, each with a _FILE variable and a systemd credential', () => {
    expect(secretFileTable()).toEqual([
      { env: 'SCHED_ZK_AUTH', fileEnv: 'SCHED_ZK_AUTH_FILE', credential: 'zk-auth', path: 'zk.auth' },
      { env: 'SCHED_DB_URL', fileEnv: 'SCHED_DB_URL_FILE', credential: 'db-url', path: 'db.url' },
      {
        env: 'SCHED_CLUSTER_SECRET',
        fileEnv: 'SCHED_CLUSTER_SECRET_FILE',
        credential: 'cluster-secret',
        path: 'cluster.secret',
      },
    ]);
  });

  test('each secret is read from its file; trailing line breaks are not part of it', () => {
    const config = loadConfig({
      env: {
        SCHED_CLUSTER_SECRET_FILE: secretFile(`${SECRET}\n`),
        SCHED_ZK_AUTH_FILE: secretFile('sched:pass:word\r\n'),
        SCHED_DB_URL_FILE: secretFile('postgres://sched:pw@db.example:5432/sched'),
      },
    });
    expect(config.cluster.secret).toBe(SECRET);
    expect(config.zk.auth).toBe('sched:pass:word');
    expect(config.db.url).toBe('postgres://sched:pw@db.example:5432/sched');
  });

  test('a missing, unreadable or empty file is an error naming the variable and the path', () => {
    const missing = join(dir, 'no-such-file');
    expect(issuesOf(() => loadConfig({ env: { SCHED_CLUSTER_SECRET_FILE: missing } }))).toBe(
      `SCHED_CLUSTER_SECRET_FILE (cluster.secret): cannot read ${missing}: no such file (ENOENT)`,
    );
    expect(issuesOf(() => loadConfig({ env: { SCHED_ZK_AUTH_FILE: dir } }))).toBe(
      `SCHED_ZK_AUTH_FILE (zk.auth): cannot read ${dir}: is a directory, expected a file (EISDIR)`,
    );
    const empty = secretFile('\n');
    expect(issuesOf(() => loadConfig({ env: { SCHED_DB_URL_FILE: empty } }))).toBe(
      `SCHED_DB_URL_FILE (db.url): ${empty} is empty`,
    );
    if (process.getuid?.() !== 0) {
      const unreadable = secretFile(SECRET, 0o000);
      chmodSync(unreadable, 0o000);
      expect(issuesOf(() => loadConfig({ env: { SCHED_CLUSTER_SECRET_FILE: unreadable } }))).toMatch(
        /^SCHED_CLUSTER_SECRET_FILE \(cluster\.secret\): cannot read .*: permission denied \(EACCES\)$/,
      );
    }
  });

  test('setting both the variable and its _FILE variant is an error; an empty one counts as unset', () => {
    const file = secretFile(SECRET);
    expect(
      issuesOf(() => loadConfig({ env: { SCHED_CLUSTER_SECRET: SECRET, SCHED_CLUSTER_SECRET_FILE: file } })),
    ).toMatch(
      /^SCHED_CLUSTER_SECRET and SCHED_CLUSTER_SECRET_FILE \(cluster\.secret\): both are set; set one/,
    );
    expect(
      loadConfig({ env: { SCHED_CLUSTER_SECRET: '', SCHED_CLUSTER_SECRET_FILE: file } }).cluster.secret,
    ).toBe(SECRET);
  });

  test('problems with files are reported together with the other problems', () => {
    const missing = join(dir, 'missing-too');
    const text = issuesOf(() => loadConfig({ env: { SCHED_DB_URL_FILE: missing, SCHED_PORT: 'eighty' } }));
    expect(text).toContain(`SCHED_DB_URL_FILE (db.url): cannot read ${missing}`);
    expect(text).toContain('SCHED_PORT (node.port): invalid value "eighty"');
  });

  test('a flag wins, and the file it overrides is not read', () => {
    const config = loadConfig({
      env: { SCHED_CLUSTER_SECRET_FILE: join(dir, 'never-read') },
      flags: { 'cluster.secret': SECRET },
    });
    expect(config.cluster.secret).toBe(SECRET);
  });

  test('the value from a file is validated like any other, and the message names the variable, not the value', () => {
    const text = issuesOf(() => loadConfig({ env: { SCHED_ZK_AUTH_FILE: secretFile('no-colon-here\n') } }));
    expect(text).toMatch(
      /^SCHED_ZK_AUTH_FILE \(.*\) \(zk\.auth\): invalid value; accepted: digest credentials/,
    );
    expect(text).not.toContain('no-colon-here');
  });
});

describe('systemd credentials ($CREDENTIALS_DIRECTORY)', () => {
  function credentials(files: Record<string, string>): string {
    const d = join(dir, `credentials-${++n}`);
    mkdirSync(d, { mode: 0o700 });
    for (const [name, content] of Object.entries(files))
      writeFileSync(join(d, name), content, { mode: 0o400 });
    return d;
  }

  test('cluster-secret, zk-auth and db-url are read from the credentials folder', () => {
    const config = loadConfig({
      env: {
        CREDENTIALS_DIRECTORY: credentials({
          'cluster-secret': `${SECRET}\n`,
          'zk-auth': 'sched:from-credential',
          'db-url': 'postgres://sched:pw@db.example/sched\n',
        }),
      },
    });
    expect(config.cluster.secret).toBe(SECRET);
    expect(config.zk.auth).toBe('sched:from-credential');
    expect(config.db.url).toBe('postgres://sched:pw@db.example/sched');
  });

  test('a credential the unit does not load is unset; the variables win over a credential', () => {
    const creds = credentials({ 'cluster-secret': SECRET });
    const worker = loadConfig({ env: { CREDENTIALS_DIRECTORY: creds } });
    expect(worker.db.url).toBeUndefined();
    const other = `${SECRET}-from-the-variable`;
    expect(
      loadConfig({ env: { CREDENTIALS_DIRECTORY: creds, SCHED_CLUSTER_SECRET: other } }).cluster.secret,
    ).toBe(other);
    expect(
      loadConfig({ env: { CREDENTIALS_DIRECTORY: creds, SCHED_CLUSTER_SECRET_FILE: secretFile(other) } })
        .cluster.secret,
    ).toBe(other);
  });

  test('a short secret in a credential is refused, naming the credential', () => {
    const creds = credentials({ 'cluster-secret': 'short' });
    expect(issuesOf(() => loadConfig({ env: { CREDENTIALS_DIRECTORY: creds } }))).toMatch(
      /^systemd credential cluster-secret \(.*cluster-secret\) \(cluster\.secret\): too short \(5 bytes\)/,
    );
  });
});

describe('the cluster secret is at least 32 bytes', () => {
  test('shorter is refused with a clear message naming where it came from, never the value', () => {
    const short = 'test-cluster-secret'; // 19 bytes
    const text = issuesOf(() => loadConfig({ env: { SCHED_CLUSTER_SECRET: short } }));
    expect(text).toBe(
      'SCHED_CLUSTER_SECRET (cluster.secret): too short (19 bytes); accepted: a random string of at least 32 bytes, e.g. the output of `openssl rand -base64 32`',
    );
    expect(issuesOf(() => loadConfig({ env: {}, flags: { 'cluster.secret': short } }))).toMatch(
      /^cluster\.secret: too short \(19 bytes\)/,
    );
    const file = secretFile(`${short}\n`);
    expect(issuesOf(() => loadConfig({ env: { SCHED_CLUSTER_SECRET_FILE: file } }))).toMatch(
      new RegExp(`^SCHED_CLUSTER_SECRET_FILE \\(${file}\\) \\(cluster\\.secret\\): too short`),
    );
  });

  test('32 bytes are enough; bytes are counted in UTF-8', () => {
    expect(loadConfig({ env: { SCHED_CLUSTER_SECRET: 'x'.repeat(32) } }).cluster.secret).toHaveLength(32);
    expect(issuesOf(() => loadConfig({ env: { SCHED_CLUSTER_SECRET: 'x'.repeat(31) } }))).toMatch(/31 bytes/);
    // 16 characters of 2 bytes each: 32 bytes.
    expect(loadConfig({ env: { SCHED_CLUSTER_SECRET: 'é'.repeat(16) } }).cluster.secret).toBe('é'.repeat(16));
  });
});

describe('scrubSecretEnvironment', () => {
  test('deletes the secrets, their _FILE variants and CREDENTIALS_DIRECTORY; keeps the rest', () => {
    expect(secretEnvironmentNames().sort()).toEqual(
      [
        'CREDENTIALS_DIRECTORY',
        'SCHED_CLUSTER_SECRET',
        'SCHED_CLUSTER_SECRET_FILE',
        'SCHED_DB_URL',
        'SCHED_DB_URL_FILE',
        'SCHED_ZK_AUTH',
        'SCHED_ZK_AUTH_FILE',
      ].sort(),
    );
    const env: Record<string, string | undefined> = {
      SCHED_CLUSTER_SECRET: SECRET,
      SCHED_ZK_AUTH_FILE: '/etc/sched/zk-auth',
      SCHED_DB_URL: 'postgres://u:p@h/d',
      CREDENTIALS_DIRECTORY: '/run/credentials/sched-worker.service',
      SCHED_ZK: '127.0.0.1:2181',
      PATH: '/usr/bin',
    };
    expect(scrubSecretEnvironment(env).sort()).toEqual(
      ['CREDENTIALS_DIRECTORY', 'SCHED_CLUSTER_SECRET', 'SCHED_DB_URL', 'SCHED_ZK_AUTH_FILE'].sort(),
    );
    expect(env).toEqual({ SCHED_ZK: '127.0.0.1:2181', PATH: '/usr/bin' });
  });
});
