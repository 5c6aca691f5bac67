import { readdirSync, readFileSync } from 'node:fs';
import { DEFINITION_SCHEMA_ID, definitionJsonSchema, validateDefinition } from '@sched/store';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, test } from 'vitest';
import { parseAllDocuments } from 'yaml';

// docs/definition.schema.json is generated from the zod schema that validates definitions; editors
// (YAML language server) use it. It must be current and must agree with sched's own validation.

const root = new URL('../../../', import.meta.url);
const checkedIn = JSON.parse(readFileSync(new URL('docs/definition.schema.json', root), 'utf8'));

/** Every definition the repository shows: the example files and the YAML blocks of docs/definitions.md. */
function repositoryExamples(): [string, string][] {
  const examples = new URL('deploy/examples/', root);
  const files = readdirSync(examples)
    .filter((f) => /\.(ya?ml|json)$/.test(f))
    .map((f): [string, string] => [`deploy/examples/${f}`, readFileSync(new URL(f, examples), 'utf8')]);
  const doc = readFileSync(new URL('docs/definitions.md', root), 'utf8');
  const blocks = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)]
    .map((m) => m[1] as string)
    .filter((text) => /^tasks:/m.test(text))
    .map((text, i): [string, string] => [`docs/definitions.md yaml block ${i + 1}`, text]);
  return [...files, ...blocks];
}

const examples = repositoryExamples();
// Strict, but for a check of Ajv's own (not JSON Schema's): the task-type conditionals require
// properties that the task object, not the conditional, defines (strictRequired).
const ajv = new Ajv2020({ allErrors: true, strict: true, strictRequired: false, allowUnionTypes: true });
const validate = ajv.compile(checkedIn);

const shell = { name: 'a', type: 'shell', command: 'true' };

describe('definition JSON Schema', () => {
  test('docs/definition.schema.json is the generated schema (regenerate it: npm run gen:docs)', () => {
    expect(checkedIn).toEqual(definitionJsonSchema());
  });

  test('is draft 2020-12 with an id, a title and descriptions', () => {
    expect(checkedIn.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(checkedIn.$id).toBe(DEFINITION_SCHEMA_ID);
    expect(checkedIn.title).toMatch(/workflow definition/);
    expect(Object.keys(checkedIn.properties)).toEqual(['name', 'description', 'schedule', 'params', 'tasks']);
    const task = checkedIn.properties.tasks.items;
    for (const field of ['name', 'type', 'command', 'url', 'timeout', 'dependsOn', 'routing'])
      expect(task.properties[field].description, field).toMatch(/\w{4}/);
  });

  test('the repository has examples to check', () => {
    expect(examples.map(([label]) => label)).toEqual(
      expect.arrayContaining([
        'deploy/examples/hello.yaml',
        'deploy/examples/nightly-report.yaml',
        'docs/definitions.md yaml block 1',
      ]),
    );
  });

  test.each(examples)('%s is accepted by the JSON Schema and by sched', (label, text) => {
    const docs = parseAllDocuments(text);
    expect(Array.isArray(docs) && docs.length > 0).toBe(true);
    for (const doc of Array.isArray(docs) ? docs : [docs]) {
      const value = doc.toJS();
      expect(validate(value), `${label}: ${ajv.errorsText(validate.errors)}`).toBe(true);
      const result = validateDefinition(value);
      expect(result.ok, `${label}: ${JSON.stringify(result)}`).toBe(true);
    }
  });

  // What an editor can flag, sched flags too.
  const rejected: [string, unknown][] = [
    ['an unknown field', { name: 'a', owner: 'me', tasks: [shell] }],
    ['an unknown task field', { name: 'a', tasks: [{ ...shell, comand: 'x' }] }],
    ['a bad workflow name', { name: 'Nightly Report', tasks: [shell] }],
    ['no tasks', { name: 'a', tasks: [] }],
    ['a missing task type', { name: 'a', tasks: [{ name: 'x' }] }],
    ['an unknown task type', { name: 'a', tasks: [{ name: 'x', type: 'python' }] }],
    ['a shell task without command', { name: 'a', tasks: [{ name: 'x', type: 'shell' }] }],
    ['a url on a shell task', { name: 'a', tasks: [{ ...shell, url: 'http://x' }] }],
    ['an http task without url', { name: 'a', tasks: [{ name: 'x', type: 'http' }] }],
    [
      'an http object without url',
      { name: 'a', tasks: [{ name: 'x', type: 'http', http: { method: 'POST' } }] },
    ],
    [
      'url and http both',
      { name: 'a', tasks: [{ name: 'x', type: 'http', url: 'http://x', http: { url: 'http://y' } }] },
    ],
    ['an ftp url', { name: 'a', tasks: [{ name: 'x', type: 'http', url: 'ftp://x' }] }],
    [
      'a bad HTTP method',
      { name: 'a', tasks: [{ name: 'x', type: 'http', http: { url: 'http://x', method: 'FETCH' } }] },
    ],
    ['a bad duration', { name: 'a', tasks: [{ ...shell, timeout: '10 minutes' }] }],
    ['retries out of range', { name: 'a', tasks: [{ ...shell, retries: { max: 101 } }] }],
    [
      'a script without source',
      { name: 'a', tasks: [{ name: 'x', type: 'script', script: { interpreter: 'sh' } }] },
    ],
    ['a schedule without cron', { name: 'a', schedule: { timezone: 'UTC' }, tasks: [shell] }],
    [
      'an unknown misfire policy',
      { name: 'a', schedule: { cron: '* * * * *', misfire: 'retry' }, tasks: [shell] },
    ],
    ['a bad start date', { name: 'a', schedule: { cron: '* * * * *', start: 'tomorrow' }, tasks: [shell] }],
    ['a reserved parameter name', { name: 'a', params: { PATH: '/tmp' }, tasks: [shell] }],
    ['a reserved parameter prefix', { name: 'a', params: { LD_AUDIT: 'x' }, tasks: [shell] }],
    ['a SCHED_ task parameter', { name: 'a', tasks: [{ ...shell, params: { SCHED_RUN_ID: '1' } }] }],
    ['a parameter name with a dash', { name: 'a', tasks: [{ ...shell, params: { 'a-b': '1' } }] }],
  ];

  test.each(rejected)('rejects %s, as sched does', (_name, value) => {
    expect(validate(value)).toBe(false);
    expect(validateDefinition(value).ok).toBe(false);
  });

  test('parameter names: environment variable names, none of the reserved ones (case matters)', () => {
    const issues = (params: Record<string, string>) => {
      const r = validateDefinition({ name: 'a', params, tasks: [shell] });
      return r.ok ? [] : r.issues;
    };
    for (const name of ['day', 'path', 'REGION', '_x', 'Ld_thing', 'SCHEDULE', 'ENVIRONMENT']) {
      expect(issues({ [name]: 'v' }), name).toEqual([]);
    }
    const reserved = [
      'PATH',
      'IFS',
      'ENV',
      'BASH_ENV',
      'NODE_OPTIONS',
      'PYTHONPATH',
      'LD_PRELOAD',
      'LD_LIBRARY_PATH',
      'DYLD_INSERT_LIBRARIES',
      'SCHED_RUN_ID',
      'SCHED_ANYTHING',
    ];
    for (const name of reserved) {
      expect(issues({ [name]: 'v' }), name).toEqual([
        { path: `params.${name}`, message: expect.stringContaining(`parameter name ${name} is reserved`) },
      ]);
      expect(validate({ name: 'a', params: { [name]: 'v' }, tasks: [shell] }), name).toBe(false);
    }
    expect(issues({ LD_PRELOAD: 'v' })[0]?.message).toBe(
      "parameter name LD_PRELOAD is reserved: it would change how the task's programs are found, loaded or run (the reserved names: docs/definitions.md#parameters)",
    );
    expect(issues({ SCHED_X: 'v' })[0]?.message).toBe(
      "parameter name SCHED_X is reserved: SCHED_* names are sched's own variables (docs/tasks.md#environment)",
    );
    expect(issues({ '1st': 'v' })[0]?.message).toBe(
      'invalid parameter name "1st"; accepted: letters, digits and _, not starting with a digit, at most 128 characters',
    );
  });

  test('accepts what sched accepts: shorthand url, http object, any-case method, ms durations', () => {
    const value = {
      name: 'a',
      schedule: { cron: '0 0 9 ? * MON-FRI', start: '2026-01-01', end: '2026-12-31T23:00:00Z', paused: true },
      params: { n: 1, flag: true },
      tasks: [
        { ...shell, timeout: 30_000, retries: { max: 2, delay: '1s500ms' } },
        { name: 'b', type: 'http', url: 'https://x.example/a', dependsOn: ['a'] },
        {
          name: 'c',
          type: 'http',
          http: { url: 'http://x', method: 'post', body: { ok: true }, expectStatus: 204 },
        },
        { name: 'd', type: 'script', script: { interpreter: 'sh', source: 'true' } },
        { name: 'e', type: 'noop', workerGroup: 'gpu.1' },
      ],
    };
    expect(validate(value), ajv.errorsText(validate.errors)).toBe(true);
    expect(validateDefinition(value).ok).toBe(true);
  });
});
