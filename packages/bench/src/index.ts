// `npm run bench -- <name> [args…]`: runs the benchmark module `./<name>.js`.
// Each benchmark module exports `run(args: string[]): Promise<void>`, prints human-readable
// figures as it goes, and ends with exactly one JSON line holding the figures.
import { readdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

interface BenchModule {
  run(args: string[]): Promise<void>;
}

const here = dirname(fileURLToPath(import.meta.url));
const available = readdirSync(here)
  .filter((f) => f.endsWith('.js') && f !== 'index.js')
  .map((f) => f.slice(0, -3))
  .sort();

const [name, ...args] = process.argv.slice(2);
if (!name || !available.includes(name)) {
  const what = name ? `unknown benchmark "${name}"` : 'no benchmark named';
  process.stderr.write(`bench: ${what}; available: ${available.join(', ') || '(none built)'}\n`);
  process.stderr.write('usage: npm run bench -- <name> [options]\n');
  process.exit(2);
}
const mod = (await import(`./${name}.js`)) as BenchModule;
await mod.run(args);
