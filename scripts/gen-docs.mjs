// `npm run gen:docs`: writes the documents generated from the code's schemas (tests fail when a
// shipped copy is stale):
// - docs/definition.schema.json: the workflow definition file (from @sched/store's zod schema),
//   for editors' YAML/JSON language servers;
// - docs/openapi.json: the master's HTTP API (from its routes' zod schemas).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openApiDocument } from '@sched/master';
import { definitionJsonSchema } from '@sched/store';

const root = join(import.meta.dirname, '..');
const write = (file, value) => {
  writeFileSync(join(root, file), `${JSON.stringify(value, null, 2)}\n`);
  console.log(`wrote ${file}`);
};
write('docs/definition.schema.json', definitionJsonSchema());
write('docs/openapi.json', openApiDocument());
