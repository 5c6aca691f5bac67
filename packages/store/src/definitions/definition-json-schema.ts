import { z } from 'zod';
import { definitionSchema } from './definition-schema.js';

/**
 * The JSON Schema (draft 2020-12) of one workflow definition document, generated from the zod
 * schema that validates definitions, for editors: docs/definition.schema.json is this, written by
 * `npm run gen:docs` (a test fails when the file is out of date). It describes the file as
 * written (zod's input side: `30s`, not milliseconds). Checks that span fields (known
 * dependencies, cycles, cron syntax, end after start) are only in sched's own validation.
 */

export const DEFINITION_SCHEMA_ID = 'urn:sched:schema:workflow-definition';

export function definitionJsonSchema(): Record<string, unknown> {
  const { $schema, ...generated } = z.toJSONSchema(definitionSchema, {
    target: 'draft-2020-12',
    io: 'input',
    unrepresentable: 'throw',
  });
  return {
    $schema,
    $id: DEFINITION_SCHEMA_ID,
    title: 'sched workflow definition',
    description:
      'One workflow definition document (YAML or JSON) for `sched-ctl workflow apply`. See docs/definitions.md.',
    ...generated,
  };
}
