import { type Issue, issuePath } from '@sched/core';
import type { z } from 'zod';
import { definitionSchema, describeValue } from './definition-schema.js';
import type { WorkflowDefinition } from './definition-types.js';

export { zonedWallTimeToEpoch } from './definition-schema.js';

/**
 * Validates one raw definition (parsed YAML/JSON) against the zod schema (definition-schema.ts)
 * and compiles it. Every problem is reported with its path —
 * `tasks[1].dependsOn[0]: unknown task "lod"; accepted: one of extract, load` — instead of
 * stopping at the first, so a user fixes a file in one pass.
 */

/** Messages for what the schemas do not word themselves (they mostly do). */
const fallbackMessages: z.core.$ZodErrorMap = (iss) => {
  const got = describeValue(iss.input);
  switch (iss.code) {
    case 'invalid_type':
      return iss.input === undefined
        ? `is required; accepted: ${iss.expected}`
        : `expected ${iss.expected}, got ${got}`;
    case 'invalid_value':
      return `invalid value ${got}; accepted: one of ${iss.values.map(String).join(', ')}`;
    case 'too_small':
      return `expected at least ${String(iss.minimum)}, got ${got}`;
    case 'too_big':
      return `expected at most ${String(iss.maximum)}, got ${got}`;
    case 'invalid_format':
      return `invalid value ${got}; accepted: ${iss.format === 'regex' ? `text matching ${iss.pattern}` : iss.format}`;
    default:
      return undefined;
  }
};

/**
 * zod issues as sched issues: one per unknown field, and for a union (a duration is a string or
 * a number; expectStatus a code or a list) the problems inside the one alternative that matched
 * the value's shape, else the union's own message. Duplicates (one value failing two checks
 * with the same message) are dropped.
 */
function definitionIssues(
  issues: readonly z.core.$ZodIssue[],
  prefix = '',
  base: readonly PropertyKey[] = [],
): Issue[] {
  const out: Issue[] = [];
  for (const iss of issues) {
    const path = [...base, ...iss.path];
    if (iss.code === 'unrecognized_keys') {
      for (const key of iss.keys) {
        out.push({
          path: issuePath([...path, key], prefix),
          message: `unknown field "${key}"; ${iss.message}`,
        });
      }
    } else if (iss.code === 'invalid_union') {
      const inside = iss.errors.filter((e) => e.length > 0 && e.every((i) => i.path.length > 0));
      if (inside.length === 1) out.push(...definitionIssues(inside[0] as z.core.$ZodIssue[], prefix, path));
      else out.push({ path: issuePath(path, prefix), message: iss.message });
    } else {
      out.push({ path: issuePath(path, prefix), message: iss.message });
    }
  }
  const seen = new Set<string>();
  return out.filter((i) => {
    const key = `${i.path}\u0000${i.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** Validates and compiles one definition. Returns issues (paths prefixed by `prefix`) or the definition. */
export function validateDefinition(
  raw: unknown,
  prefix = '',
): { ok: true; definition: WorkflowDefinition } | { ok: false; issues: Issue[] } {
  const result = definitionSchema.safeParse(raw, { error: fallbackMessages });
  if (result.success) return { ok: true, definition: result.data };
  return { ok: false, issues: definitionIssues(result.error.issues, prefix) };
}
