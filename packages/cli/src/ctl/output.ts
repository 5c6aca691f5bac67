/** Output helpers: `--json` prints exactly the documented shape; humans get aligned tables. */

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** An aligned table with a header row; cells are stringified, null/undefined shown as `-`. */
export function printTable(headers: string[], rows: unknown[][], indent = ''): void {
  const cells = rows.map((r) => r.map(cell));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) =>
    `${indent}${r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd()}\n`;
  process.stdout.write(line(headers));
  for (const r of cells) process.stdout.write(line(r));
}

function cell(v: unknown): string {
  if (v === null || v === undefined || v === '') return '-';
  if (Array.isArray(v)) return v.join(',');
  return String(v);
}

/** `1234` ms → `1.2s`; `null` → `-`. */
export function age(ms: number | null): string {
  if (ms === null) return '-';
  if (ms < 1000) return `${ms}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)}m${Math.floor((ms % 60_000) / 1000)}s`;
  return `${Math.floor(ms / 3_600_000)}h${Math.floor((ms % 3_600_000) / 60_000)}m`;
}

export function pct(v: number | null): string {
  return v === null ? '-' : `${Math.round(v * 100)}%`;
}

export function epochIso(ms: number | null): string {
  return ms === null ? '-' : new Date(ms).toISOString();
}
