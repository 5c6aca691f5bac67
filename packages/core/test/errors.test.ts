import {
  ConfigError,
  DefinitionError,
  FencedWriteError,
  formatIssues,
  NotFoundError,
  SchedError,
  SessionLostError,
  TimeoutError,
  UsageError,
} from '@sched/core';
import { describe, expect, test } from 'vitest';

describe('error hierarchy', () => {
  test.each([
    [new ConfigError('bad config'), 'ConfigError', 'CONFIG_INVALID', false],
    [new DefinitionError('bad definition'), 'DefinitionError', 'DEFINITION_INVALID', false],
    [new SessionLostError(), 'SessionLostError', 'SESSION_LOST', true],
    [new FencedWriteError('stale epoch'), 'FencedWriteError', 'FENCED', false],
    [new TimeoutError('too slow'), 'TimeoutError', 'TIMEOUT', true],
    [new NotFoundError('no run 42'), 'NotFoundError', 'NOT_FOUND', false],
    [new UsageError('unknown option --x'), 'UsageError', 'USAGE', false],
  ])('%s has its name, stable code and retriable flag', (err, name, code, retriable) => {
    expect(err).toBeInstanceOf(SchedError);
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe(name);
    expect(err.code).toBe(code);
    expect(err.retriable).toBe(retriable);
  });

  test('SchedError carries code, retriable and cause', () => {
    const cause = new Error('ECONNRESET');
    const err = new SchedError('ZK_REQUEST', 'getData failed', { retriable: true, cause });
    expect(err.message).toBe('getData failed');
    expect(err.code).toBe('ZK_REQUEST');
    expect(err.retriable).toBe(true);
    expect(err.cause).toBe(cause);
    expect(new SchedError('X', 'y').retriable).toBe(false);
    expect('cause' in new SchedError('X', 'y')).toBe(false);
  });

  test('ConfigError and DefinitionError list every issue in their message', () => {
    const issues = [
      { path: 'tasks[0].timeout', message: 'invalid duration "x"' },
      { path: 'zk.sessionTimeout', message: 'invalid duration "ten"', source: 'SCHED_ZK_SESSION_TIMEOUT' },
      { path: '', message: 'file is empty' },
    ];
    const err = new DefinitionError('invalid workflow nightly: 3 problems', issues);
    expect(err.issues).toEqual(issues);
    expect(err.message).toBe(
      [
        'invalid workflow nightly: 3 problems',
        '  - tasks[0].timeout: invalid duration "x"',
        '  - SCHED_ZK_SESSION_TIMEOUT (zk.sessionTimeout): invalid duration "ten"',
        '  - file is empty',
      ].join('\n'),
    );
    expect(new ConfigError('no issues').message).toBe('no issues');
  });

  test('formatIssues renders one line per issue', () => {
    expect(
      formatIssues([
        { path: 'a.b', message: 'm1' },
        { path: 'c', message: 'm2' },
      ]),
    ).toBe('a.b: m1\nc: m2');
    expect(formatIssues([])).toBe('');
  });
});
