import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DefinitionError } from '@sched/core';
import {
  applyDefinitions,
  compileDefinitionSources,
  compileDefinitions,
  createPool,
  getScheduleOfWorkflow,
  getWorkflowByName,
  loadDefinitionPath,
  MIGRATIONS_DIR,
  migrate,
} from '@sched/store';
import { createDatabase } from '@sched/testkit';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// Integration: validation + apply against a real PostgreSQL. Every malformed definition must be
// rejected with one DefinitionError naming the path and what is accepted, and must write nothing.

let pool: pg.Pool;
let drop: () => Promise<void>;

beforeAll(async () => {
  const db = await createDatabase();
  drop = db.drop;
  await migrate(db.url);
  pool = createPool(db.url, { max: 4 });
});
afterAll(async () => {
  await pool?.end();
  await drop?.();
});

async function tableCounts(): Promise<Record<string, number>> {
  const { rows } = await pool.query(
    `SELECT (SELECT count(*) FROM workflows)::int AS workflows, (SELECT count(*) FROM workflow_versions)::int AS versions,
            (SELECT count(*) FROM workflow_tasks)::int AS tasks, (SELECT count(*) FROM schedules)::int AS schedules`,
  );
  return rows[0];
}

const good = () => ({
  name: 'nightly-report',
  schedule: {
    cron: '0 0/30 9-18 ? * MON-FRI',
    timezone: 'Asia/Shanghai',
    misfire: 'fire-once-now',
    concurrency: 'forbid',
  },
  tasks: [
    {
      name: 'extract',
      type: 'shell',
      command: './extract.sh',
      timeout: '10m',
      retries: { max: 3, backoff: 'exponential', delay: '5s' },
    },
    { name: 'load', type: 'http', url: 'http://127.0.0.1:8080/load', dependsOn: ['extract'] },
  ],
});

type Mutator = (d: ReturnType<typeof good> & Record<string, unknown>) => unknown;
// biome-ignore lint/suspicious/noExplicitAny: test fixtures poke at arbitrary shapes
const t = (d: any, i: number) => d.tasks[i];

// [description, mutation, expected path, expected message fragment]
const MALFORMED: [string, Mutator, string, string][] = [
  [
    'unknown task in dependsOn',
    (d) => {
      t(d, 1).dependsOn = ['lod'];
    },
    'tasks[1].dependsOn[0]',
    'unknown task "lod"; accepted: one of extract, load',
  ],
  [
    'dependency cycle',
    (d) => {
      t(d, 0).dependsOn = ['load'];
    },
    'tasks[0].dependsOn',
    'dependency cycle: extract → load → extract',
  ],
  [
    'self dependency',
    (d) => {
      t(d, 0).dependsOn = ['extract'];
    },
    'tasks[0].dependsOn[0]',
    'depends on itself',
  ],
  [
    'duplicate task name',
    (d) => {
      t(d, 1).name = 'extract';
      t(d, 1).dependsOn = [];
    },
    'tasks[1].name',
    'duplicate task name "extract"',
  ],
  [
    'bad duration',
    (d) => {
      t(d, 0).timeout = '10 minutes';
    },
    'tasks[0].timeout',
    'invalid duration "10 minutes"',
  ],
  [
    'bad retry delay',
    (d) => {
      t(d, 0).retries.delay = 'soon';
    },
    'tasks[0].retries.delay',
    'accepted: a number of milliseconds or a string like',
  ],
  [
    'unknown top-level field',
    (d) => {
      d.owner = 'me';
    },
    'owner',
    'unknown field "owner"; accepted: one of name, description, schedule, params, tasks',
  ],
  [
    'unknown task field',
    (d) => {
      t(d, 0).comand = 'x';
    },
    'tasks[0].comand',
    'unknown field "comand"; accepted: one of name, type, command',
  ],
  [
    'unknown schedule field',
    (d) => {
      (d.schedule as Record<string, unknown>).zone = 'UTC';
    },
    'schedule.zone',
    'unknown field "zone"',
  ],
  [
    'wrong type for tasks',
    (d) => {
      d.tasks = 'extract' as never;
    },
    'tasks',
    'expected a list of tasks, got the string "extract"',
  ],
  [
    'wrong type for retries.max',
    (d) => {
      t(d, 0).retries.max = 'three';
    },
    'tasks[0].retries.max',
    'expected an integer from 0 to 100',
  ],
  [
    'bad cron',
    (d) => {
      d.schedule.cron = '61 * * * *';
    },
    'schedule.cron',
    'invalid cron expression "61 * * * *"',
  ],
  [
    'cron with too many fields',
    (d) => {
      d.schedule.cron = '0 0 0 1 1 ? 2030 9';
    },
    'schedule.cron',
    'it has 8 fields; accepted: five fields',
  ],
  [
    'cron never matching',
    (d) => {
      d.schedule.cron = '0 0 0 30 2 ?';
    },
    'schedule.cron',
    'it never matches any date',
  ],
  [
    'Quartz cron with both day fields',
    (d) => {
      d.schedule.cron = '0 0 12 15 * MON';
    },
    'schedule.cron',
    'one of them must be "?"',
  ],
  [
    'unknown time zone',
    (d) => {
      d.schedule.timezone = 'Mars/Olympus';
    },
    'schedule.timezone',
    'unknown time zone "Mars/Olympus"; accepted: an IANA name',
  ],
  [
    'unknown misfire policy',
    (d) => {
      (d.schedule as Record<string, unknown>).misfire = 'retry';
    },
    'schedule.misfire',
    'accepted: one of skip, fire-once-now, fire-all',
  ],
  [
    'unknown concurrency policy',
    (d) => {
      (d.schedule as Record<string, unknown>).concurrency = 'serial';
    },
    'schedule.concurrency',
    'accepted: one of allow, forbid, replace, queue',
  ],
  [
    'unknown task type',
    (d) => {
      t(d, 0).type = 'python';
    },
    'tasks[0].type',
    'accepted: one of shell, script, http, noop',
  ],
  [
    'unknown routing',
    (d) => {
      t(d, 0).routing = 'nearest';
    },
    'tasks[0].routing',
    'accepted: one of first, last, round-robin',
  ],
  [
    'shell task without command',
    (d) => {
      delete t(d, 0).command;
    },
    'tasks[0].command',
    'is required',
  ],
  [
    'field of another task type',
    (d) => {
      t(d, 0).url = 'http://x';
    },
    'tasks[0].url',
    'not allowed for a task of type shell',
  ],
  [
    'bad workflow name',
    (d) => {
      d.name = 'Nightly Report';
    },
    'name',
    'accepted: lower-case letters, digits and "-"',
  ],
  [
    'missing name',
    (d) => {
      delete (d as Record<string, unknown>).name;
    },
    'name',
    'is required',
  ],
  [
    'empty task list',
    (d) => {
      d.tasks = [];
    },
    'tasks',
    'must hold at least one task',
  ],
  [
    'bad http url',
    (d) => {
      t(d, 1).url = 'ftp://x/y';
    },
    'tasks[1].url',
    'accepted: an absolute http:// or https:// URL',
  ],
  [
    'end before start',
    (d) => {
      Object.assign(d.schedule, { start: '2026-02-01', end: '2026-01-01' });
    },
    'schedule.end',
    'must be after start',
  ],
  [
    'bad start date',
    (d) => {
      Object.assign(d.schedule, { start: '2026-02-30' });
    },
    'schedule.start',
    'invalid date "2026-02-30"',
  ],
  [
    'unknown failover policy',
    (d) => {
      t(d, 0).failover = 'ignore';
    },
    'tasks[0].failover',
    'accepted: one of rerun, fail',
  ],
  [
    'http task without a URL',
    (d) => {
      delete t(d, 1).url;
    },
    'tasks[1].url',
    'required for an http task; give it as url or as http.url',
  ],
  [
    'http object without a URL',
    (d) => {
      delete t(d, 1).url;
      t(d, 1).http = { method: 'POST' };
    },
    'tasks[1].http.url',
    'required for an http task; give it as url or as http.url',
  ],
  [
    'script without source',
    (d) => {
      d.tasks.push({ name: 'py', type: 'script', script: { interpreter: 'python3' } } as never);
    },
    'tasks[2].script.source',
    'is required',
  ],
  [
    'reserved workflow parameter name',
    (d) => {
      d.params = { LD_PRELOAD: '/tmp/evil.so' };
    },
    'params.LD_PRELOAD',
    'parameter name LD_PRELOAD is reserved',
  ],
  [
    'reserved task parameter name',
    (d) => {
      t(d, 0).params = { day: '1', PATH: '/tmp' };
    },
    'tasks[0].params.PATH',
    'parameter name PATH is reserved',
  ],
  [
    'parameter name that is no environment variable name',
    (d) => {
      d.params = { 'the-day': '1' };
    },
    'params.the-day',
    'invalid parameter name "the-day"; accepted: letters, digits and _',
  ],
];

describe('malformed definitions', () => {
  it('has at least 20 distinct cases', () => {
    expect(new Set(MALFORMED.map((m) => m[0])).size).toBeGreaterThanOrEqual(20);
  });

  it.each(MALFORMED)(
    '%s is rejected with its path and nothing is written',
    async (_name, mutate, path, fragment) => {
      const before = await tableCounts();
      const def = good();
      mutate(def as never);
      let caught: unknown;
      try {
        await applyDefinitions(pool, compileDefinitions([{ value: def }]));
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(DefinitionError);
      const err = caught as DefinitionError;
      expect(err.code).toBe('DEFINITION_INVALID');
      const issue = err.issues.find((i) => i.path === path);
      expect(issue, `issues were: ${JSON.stringify(err.issues)}`).toBeDefined();
      expect(issue?.message).toContain(fragment);
      expect(err.message).toContain(`${path}: `);
      expect(await tableCounts()).toEqual(before);
    },
  );

  it('collects every problem of a definition at once', () => {
    const def = good();
    t(def, 0).timeout = 'x';
    t(def, 1).dependsOn = ['nope'];
    def.schedule.timezone = 'Nowhere/Land';
    const err = (() => {
      try {
        compileDefinitions([{ value: def }]);
      } catch (e) {
        return e as DefinitionError;
      }
      throw new Error('expected a DefinitionError');
    })();
    expect(err.issues.map((i) => i.path).sort()).toEqual([
      'schedule.timezone',
      'tasks[0].timeout',
      'tasks[1].dependsOn[0]',
    ]);
  });

  it('reports dependency problems even beside field problems of every kind', () => {
    const def = good() as ReturnType<typeof good> & Record<string, unknown>;
    def.owner = 'me';
    t(def, 0).retries.max = 1.5; // not an integer: must not hide the other problems
    t(def, 0).timeout = [];
    t(def, 1).dependsOn = ['nope', 5];
    const err = (() => {
      try {
        compileDefinitions([{ value: def }]);
      } catch (e) {
        return e as DefinitionError;
      }
      throw new Error('expected a DefinitionError');
    })();
    expect(err.issues).toEqual(
      expect.arrayContaining([
        { path: 'owner', message: expect.stringContaining('unknown field "owner"; accepted: one of name') },
        { path: 'tasks[0].retries.max', message: 'expected an integer from 0 to 100, got number 1.5' },
        { path: 'tasks[0].timeout', message: expect.stringContaining('expected a duration like 30s') },
        { path: 'tasks[1].dependsOn[0]', message: 'unknown task "nope"; accepted: one of extract, load' },
        { path: 'tasks[1].dependsOn[1]', message: expect.stringContaining('got number 5') },
      ]),
    );
    expect(err.issues).toHaveLength(5);
  });
});

describe('multi-document files and folders apply all-or-nothing', () => {
  it('a YAML file with one bad document writes none of its documents', async () => {
    const before = await tableCounts();
    const text = `name: first-ok\ntasks:\n  - { name: a, type: noop }\n---\nname: second-bad\ntasks:\n  - { name: a, type: noop, dependsOn: [b] }\n`;
    expect(() => compileDefinitionSources([{ label: 'jobs.yaml', text }])).toThrow(
      /jobs\.yaml#2\.tasks\[0\]\.dependsOn\[0\]: unknown task "b"; accepted: one of a/,
    );
    expect(await tableCounts()).toEqual(before);
  });

  it('a folder with a bad file writes nothing; fixed, it writes all', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sched-defs-'));
    writeFileSync(join(dir, 'a.yaml'), 'name: folder-a\ntasks:\n  - { name: x, type: noop }\n');
    writeFileSync(
      join(dir, 'b.json'),
      JSON.stringify({ name: 'folder-b', tasks: [{ name: 'y', type: 'noop', timeout: 'forever' }] }),
    );
    writeFileSync(join(dir, 'notes.txt'), 'ignored');
    const before = await tableCounts();
    await expect(loadDefinitionPath(dir)).rejects.toThrow(
      /b\.json#1\.tasks\[0\]\.timeout: invalid duration "forever"/,
    );
    expect(await tableCounts()).toEqual(before);
    writeFileSync(
      join(dir, 'b.json'),
      JSON.stringify({ name: 'folder-b', tasks: [{ name: 'y', type: 'noop', timeout: '5s' }] }),
    );
    const results = await applyDefinitions(pool, await loadDefinitionPath(dir));
    expect(results.map((r) => [r.name, r.status])).toEqual([
      ['folder-a', 'created'],
      ['folder-b', 'created'],
    ]);
  });

  it('the same workflow twice in one apply is rejected', () => {
    const text =
      'name: twice\ntasks: [{ name: a, type: noop }]\n---\nname: twice\ntasks: [{ name: b, type: noop }]\n';
    expect(() => compileDefinitionSources([{ label: 'x.yaml', text }])).toThrow(
      /x\.yaml#2\.name: workflow "twice" is defined twice/,
    );
  });
});

describe('versioning', () => {
  it('unchanged is a no-op, a change is a new version, the schedule id stays', async () => {
    const now = Date.UTC(2026, 0, 5, 0, 0, 0); // a Monday
    const [first] = await applyDefinitions(pool, compileDefinitions([{ value: good() }]), { nowMs: now });
    expect(first).toEqual({ name: 'nightly-report', version: 1, status: 'created' });
    const wf = await getWorkflowByName(pool, 'nightly-report');
    const s1 = await getScheduleOfWorkflow(pool, wf!.id);
    // 09:00 Asia/Shanghai (UTC+8) on Monday 2026-01-05 is 01:00Z.
    expect(s1?.nextFireTime).toBe(Date.UTC(2026, 0, 5, 1, 0, 0));

    // Same content, different key order: unchanged.
    const reordered = { tasks: good().tasks, schedule: good().schedule, name: 'nightly-report' };
    const [again] = await applyDefinitions(pool, compileDefinitions([{ value: reordered }]), { nowMs: now });
    expect(again).toEqual({ name: 'nightly-report', version: 1, status: 'unchanged' });

    const changed = good();
    t(changed, 0).command = './extract.sh --full';
    const [second] = await applyDefinitions(pool, compileDefinitions([{ value: changed }]), { nowMs: now });
    expect(second).toEqual({ name: 'nightly-report', version: 2, status: 'updated' });
    const s2 = await getScheduleOfWorkflow(pool, wf!.id);
    expect(s2?.id).toBe(s1?.id);
    expect(s2?.revision).toBeGreaterThan(s1!.revision);
    const { rows } = await pool.query(
      'SELECT version FROM workflow_versions WHERE workflow_id = $1 ORDER BY version',
      [wf!.id],
    );
    expect(rows.map((r) => r.version)).toEqual([1, 2]);
  });

  it('migrations are idempotent and safe to run concurrently', async () => {
    const db = await createDatabase();
    try {
      const files = readdirSync(MIGRATIONS_DIR).filter((f) => f.endsWith('.sql')).length;
      const results = await Promise.all([migrate(db.url), migrate(db.url), migrate(db.url)]);
      // One applies every migration; the others waited on the lock and found nothing to do.
      expect(results.map((r) => r.length).sort()).toEqual([0, 0, files]);
      expect(await migrate(db.url)).toEqual([]);
    } finally {
      await db.drop();
    }
  });
});
