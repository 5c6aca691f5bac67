// Writes docs/configuration.md from the configuration schema (run after `npx tsc -b packages/core`).
import { writeFileSync } from 'node:fs';
import { renderConfigReference } from '../dist/index.js';

const target = new URL('../../../docs/configuration.md', import.meta.url);
writeFileSync(target, renderConfigReference());
console.log(`wrote ${target.pathname}`);
