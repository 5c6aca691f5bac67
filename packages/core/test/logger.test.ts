import { PassThrough } from 'node:stream';
import { createLogger, redactConfig } from '@sched/core';
import { describe, expect, test } from 'vitest';

/** A logger whose output is captured; `lines()` returns what it wrote so far. */
function capture(
  opts: { pretty?: boolean; level?: string; name?: string; bindings?: Record<string, unknown> } = {},
) {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (chunk: Buffer) => {
    text += chunk.toString('utf8');
  });
  const logger = createLogger({ pretty: false, ...opts, destination: stream });
  return { logger, text: () => text, lines: () => text.trim().split('\n').filter(Boolean) };
}

function json(line: string | undefined): Record<string, unknown> {
  if (line === undefined) throw new Error('no log line');
  return JSON.parse(line) as Record<string, unknown>;
}

describe('createLogger', () => {
  test('writes JSON lines with name, bindings and child bindings', () => {
    const out = capture({ name: 'master', bindings: { node: '127.0.0.1:5678_1' } });
    out.logger.child({ component: 'election' }).info({ term: 3 }, 'became leader');
    const line = json(out.lines()[0]);
    expect(line).toMatchObject({
      level: 30,
      name: 'master',
      node: '127.0.0.1:5678_1',
      component: 'election',
      term: 3,
      msg: 'became leader',
      pid: process.pid,
    });
    expect(typeof line.time).toBe('string');
  });

  test('respects the level', () => {
    const out = capture({ level: 'warn' });
    out.logger.info('hidden');
    out.logger.warn('shown');
    expect(out.lines().map((l) => json(l).msg)).toEqual(['shown']);
  });

  test('redacts secrets at any depth and only the password of URLs', () => {
    const out = capture();
    out.logger.info(
      {
        secret: 's0',
        config: {
          cluster: { secret: 's1' },
          zk: { auth: 'user:s2', connect: '127.0.0.1:2181' },
          db: { url: 'postgres://sched:s3@db.example:5432/sched' },
        },
        request: { headers: { password: 's4' } },
        token: 's5',
      },
      'starting',
    );
    const text = out.text();
    for (const secret of ['s0', 's1', 'user:s2', ':s3@', 's4', 's5']) expect(text).not.toContain(secret);
    const line = json(out.lines()[0]);
    expect(line.config).toEqual({
      cluster: { secret: '[Redacted]' },
      zk: { auth: '[Redacted]', connect: '127.0.0.1:2181' },
      db: { url: 'postgres://sched:***@db.example:5432/sched' },
    });
    expect(line.secret).toBe('[Redacted]');
  });

  test('pretty output is human-readable, not JSON, and still redacted', () => {
    const out = capture({ pretty: true });
    out.logger.info({ cluster: { secret: 'hunter2' } }, 'hello there');
    const text = out.text();
    expect(text).toContain('INFO');
    expect(text).toContain('hello there');
    expect(text).not.toContain('hunter2');
    expect(() => JSON.parse(out.lines()[0] ?? '')).toThrow();
  });
});

describe('redactConfig', () => {
  test('hides secrets and URL passwords, leaves the rest and the input untouched', () => {
    const config = {
      zk: { connect: '127.0.0.1:2181', auth: 'u:p', sessionTimeoutMs: 10_000 },
      db: { url: 'postgresql://sched:pa55@127.0.0.1:5432/sched?sslmode=disable' },
      cluster: { secret: 'shh' },
      worker: { groups: ['default'] },
    };
    expect(redactConfig(config)).toEqual({
      zk: { connect: '127.0.0.1:2181', auth: '[Redacted]', sessionTimeoutMs: 10_000 },
      db: { url: 'postgresql://sched:***@127.0.0.1:5432/sched?sslmode=disable' },
      cluster: { secret: '[Redacted]' },
      worker: { groups: ['default'] },
    });
    expect(config.cluster.secret).toBe('shh');
    expect(config.db.url).toContain('pa55');
  });

  test('URLs without a password are unchanged', () => {
    expect(redactConfig({ db: { url: 'postgres://127.0.0.1:5432/sched' } })).toEqual({
      db: { url: 'postgres://127.0.0.1:5432/sched' },
    });
  });
});
