/**
 * A validation issue's path as users read it: `tasks[1].dependsOn[0]` from zod's
 * `['tasks', 1, 'dependsOn', 0]`, under an optional prefix (`jobs.yaml#2`). Shared by the
 * definition validator and the REST API's request validation.
 */
export function issuePath(path: readonly PropertyKey[], prefix = ''): string {
  let out = prefix;
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out ? `.${String(p)}` : String(p);
  }
  return out;
}
