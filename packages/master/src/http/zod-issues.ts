import { type Issue, issuePath } from '@sched/core';
import type { z } from 'zod';

/**
 * zod's issues in the project's words: every problem at once, each with its path
 * (`params.FOO`, `limit`), what was wrong and what is accepted — `limit: expected an integer
 * from 1 to 10000, got "0"` rather than zod's "Too small: expected number to be >=1".
 * Schemas that know better give their own message (`{ error: … }`); this map covers the rest.
 */

/** `the string "x"`, `number 3`, `a list`, … — how a received value is named in messages. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.slice(0, 80))}`;
  return `${typeof value} ${String(value)}`;
}

const article = (type: string) =>
  ({
    object: 'an object',
    array: 'a list',
    string: 'a string',
    number: 'a number',
    int: 'an integer',
    boolean: 'true or false',
    null: 'null',
  })[type] ?? type;

/** The error map given to `safeParse` for API input (schema-level messages win over it). */
export const apiErrorMap: z.core.$ZodErrorMap = (iss) => {
  const got = describeValue(iss.input);
  switch (iss.code) {
    case 'invalid_type':
      return iss.input === undefined ? 'required' : `expected ${article(iss.expected)}, got ${got}`;
    case 'invalid_value':
      return `expected one of ${iss.values.map((v) => String(v)).join(', ')}, got ${got}`;
    case 'unrecognized_keys':
      return `unknown field${iss.keys.length > 1 ? 's' : ''} ${iss.keys.map((k) => `"${k}"`).join(', ')}`;
    case 'too_small':
      return iss.origin === 'array' || iss.origin === 'string'
        ? `expected at least ${String(iss.minimum)} ${iss.origin === 'array' ? 'item(s)' : 'character(s)'}, got ${got}`
        : `expected at least ${String(iss.minimum)}, got ${got}`;
    case 'too_big':
      return iss.origin === 'array' || iss.origin === 'string'
        ? `expected at most ${String(iss.maximum)} ${iss.origin === 'array' ? 'item(s)' : 'character(s)'}`
        : `expected at most ${String(iss.maximum)}, got ${got}`;
    case 'invalid_format':
      return `expected ${iss.format === 'regex' ? `text matching ${iss.pattern}` : iss.format}, got ${got}`;
    default:
      return undefined;
  }
};

/** Every issue of a failed parse, in order, with the project's paths. */
export function toIssues(error: z.ZodError, prefix = ''): Issue[] {
  return error.issues.map((i) => ({ path: issuePath(i.path, prefix), message: i.message }));
}

/** `path: message; path: message` — one line naming every problem. */
export function issuesLine(issues: readonly Issue[]): string {
  return issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ');
}
