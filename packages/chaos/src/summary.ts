// The human-readable summary of a chaos run; its last line is `N passed, N failed`.
import type { ChaosReport } from './chaos-run.js';

const maxViolationsShown = 15;

export function formatSummary(r: ChaosReport): string {
  const lines: string[] = [];
  const s = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
  lines.push('');
  lines.push('==== sched chaos summary');
  lines.push(
    `seed ${r.seed}; nemesis ${s(r.durationMs)}; ${r.zk}; session timeout ${s(r.sessionTimeoutMs)}, failover delay ${s(r.failoverDelayMs)}; total ${s(r.elapsedMs)}`,
  );
  const kinds = Object.entries(r.faultCounts)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
  lines.push(
    `faults injected: ${r.faults.length} (${kinds || 'none'}); ${r.longFaults} longer than the session timeout`,
  );
  const byCode = new Map<string, number>();
  for (const e of r.daemonExits) {
    const k = e.code !== null ? `code ${e.code}` : `signal ${e.signal}`;
    byCode.set(k, (byCode.get(k) ?? 0) + 1);
  }
  lines.push(
    `daemon restarts: ${r.restarts}; exits not caused by the nemesis: ${r.daemonExits.length}${byCode.size ? ` (${[...byCode].map(([k, n]) => `${k}: ${n}`).join(', ')})` : ''}; start retries: ${r.startFailures.length}`,
  );
  const runsByTrigger = count(r.facts.runs.map((x) => x.trigger));
  const runsByState = count(r.facts.runs.map((x) => x.state));
  lines.push(`runs checked: ${r.facts.runs.length} (${fmt(runsByTrigger)}; ${fmt(runsByState)})`);
  const attemptsByState = count(r.facts.attempts.map((a) => a.state));
  lines.push(
    `attempts: ${r.facts.attempts.length} (${fmt(attemptsByState)}); executions in the task log: ${r.executions}; manual triggers: ${r.triggers}`,
  );
  const failoversByRole = count(r.facts.failovers.map((f) => f.role));
  const unrecorded = r.facts.failovers.filter((f) => !f.recorded).length;
  lines.push(
    `failovers: ${r.facts.failovers.length} (${fmt(failoversByRole) || 'none'}); tasks failed over: ${sum(r.facts.failovers.map((f) => f.tasks))}; runs re-assigned: ${sum(r.facts.failovers.map((f) => f.runs))}; without a ZooKeeper record: ${unrecorded}`,
  );
  if (r.facts.attemptErrors.length > 0) {
    lines.push('attempts that did not succeed, by error:');
    for (const e of r.facts.attemptErrors) lines.push(`  ${e.count} × ${e.state}: ${e.error}`);
  }
  lines.push(
    `checked window: ${new Date(r.windowStartMs).toISOString()} .. ${new Date(r.windowEndMs).toISOString()}`,
  );
  lines.push(`task log and daemon logs: ${r.dataDir}`);
  lines.push('');
  for (const c of r.checks) {
    lines.push(`${c.passed ? 'PASS' : 'FAIL'} ${c.name}: ${c.violations.length} violations (${c.examined})`);
    for (const v of c.violations.slice(0, maxViolationsShown)) lines.push(`    ${v}`);
    if (c.violations.length > maxViolationsShown)
      lines.push(`    … and ${c.violations.length - maxViolationsShown} more`);
  }
  const passed = r.checks.filter((c) => c.passed).length;
  lines.push(`${passed} passed, ${r.checks.length - passed} failed`);
  return lines.join('\n');
}

function count(items: string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const i of items) m.set(i, (m.get(i) ?? 0) + 1);
  return m;
}

function fmt(m: Map<string, number>): string {
  return [...m].map(([k, n]) => `${k} ${n}`).join(', ');
}

function sum(ns: number[]): number {
  return ns.reduce((a, b) => a + b, 0);
}
