// The chaos checker: pure functions from what the database and the task log say after healing
// to a list of checks, each passed or failed with the violations that failed it. No I/O here
// (facts.ts gathers the inputs), so every check is unit-tested with hand-made facts.
//
// The guarantees checked (docs/design.md#guarantees):
//   lost fires          every every-second schedule has a run for every second of the checked
//                       window, unless its misfire policy excuses it (fire-once-now: a gap must
//                       end in a run with trigger 'misfire'; skip: gaps are allowed);
//   duplicate fires     no (schedule, fire time) has two runs;
//   manual triggers     every trigger command produced exactly one run;
//   overlapping executions  no two executions of one task of one run were alive at once;
//   attempts executed once  no attempt was executed by two processes;
//   runs not terminal   every run and attempt is terminal;
//   runs failed         no run failed or was cancelled: the workload's tasks always exit 0, have
//                       no timeout and are never cancelled, and their failover policy is rerun,
//                       so a failed run can only be the system's doing;
//   succeeded attempts confirmed  every attempt the database calls succeeded has a finished
//                       execution in the task log (the database does not claim work never done);
//   task log well-formed every line of the task log parses.
import type { Execution } from './task-log.js';

export type MisfirePolicy = 'skip' | 'fire-once-now' | 'fire-all';

export interface ScheduleFacts {
  scheduleId: number;
  workflow: string;
  misfire: MisfirePolicy;
  /** Fire period of the cron (every schedule of the chaos workload fires every second). */
  periodMs: number;
  runs: { fireTimeMs: number; trigger: string; runId: number }[];
}

export interface RunFacts {
  id: number;
  workflow: string;
  state: string;
  trigger: string;
  commandId: number | null;
}

export interface AttemptFacts {
  runId: number;
  task: string;
  attempt: number;
  shardIndex: number;
  state: string;
  workerKey: string | null;
}

export interface CheckInput {
  /** First and last fire time (epoch ms, inclusive) checked for lost fires. */
  windowStartMs: number;
  windowEndMs: number;
  schedules: ScheduleFacts[];
  runs: RunFacts[];
  attempts: AttemptFacts[];
  executions: Execution[];
  malformedLogLines: string[];
  /** Ids of the trigger commands the workload queued. */
  triggerCommandIds: number[];
}

export interface CheckResult {
  name: string;
  passed: boolean;
  /** What was examined, for the summary (e.g. "3 schedules × 181 s"). */
  examined: string;
  violations: string[];
}

const terminalRunStates = new Set(['succeeded', 'failed', 'cancelled']);
const terminalAttemptStates = new Set(['succeeded', 'failed', 'timed-out', 'killed', 'failed-over']);

function result(name: string, examined: string, violations: string[]): CheckResult {
  return { name, passed: violations.length === 0, examined, violations };
}

const iso = (ms: number): string => new Date(ms).toISOString();

export function checkLostFires(input: CheckInput): CheckResult {
  const violations: string[] = [];
  let expected = 0;
  let excused = 0;
  for (const s of input.schedules) {
    const byTime = new Map(s.runs.map((r) => [r.fireTimeMs, r]));
    const sorted = [...s.runs].sort((a, b) => a.fireTimeMs - b.fireTimeMs);
    const first = Math.ceil(input.windowStartMs / s.periodMs) * s.periodMs;
    for (let t = first; t <= input.windowEndMs; t += s.periodMs) {
      expected += 1;
      if (byTime.has(t)) continue;
      if (s.misfire === 'skip') {
        excused += 1;
        continue;
      }
      if (s.misfire === 'fire-once-now') {
        // The run that ended this gap must say it is the one misfire run for the gap.
        const next = sorted.find((r) => r.fireTimeMs > t);
        if (next?.trigger === 'misfire') {
          excused += 1;
          continue;
        }
        violations.push(
          `${s.workflow}: no run for fire time ${iso(t)}, and the next run (${next ? `${iso(next.fireTimeMs)} trigger ${next.trigger}` : 'none'}) is not a misfire run`,
        );
        continue;
      }
      violations.push(`${s.workflow}: no run for fire time ${iso(t)} (misfire policy fire-all)`);
    }
  }
  return result(
    'lost fires',
    `${input.schedules.length} schedules, fire times ${iso(input.windowStartMs)} .. ${iso(input.windowEndMs)}: ${expected} expected, ${excused} excused by misfire policy`,
    violations,
  );
}

export function checkDuplicateFires(input: CheckInput): CheckResult {
  const violations: string[] = [];
  let fires = 0;
  for (const s of input.schedules) {
    const seen = new Map<number, number[]>();
    for (const r of s.runs) {
      fires += 1;
      seen.set(r.fireTimeMs, [...(seen.get(r.fireTimeMs) ?? []), r.runId]);
    }
    for (const [t, ids] of seen) {
      if (ids.length > 1)
        violations.push(`${s.workflow}: fire time ${iso(t)} has ${ids.length} runs (${ids.join(', ')})`);
    }
  }
  return result('duplicate fires', `${fires} scheduled runs`, violations);
}

export function checkManualTriggers(input: CheckInput): CheckResult {
  const violations: string[] = [];
  const runsByCommand = new Map<number, number[]>();
  for (const r of input.runs) {
    if (r.commandId === null) continue;
    runsByCommand.set(r.commandId, [...(runsByCommand.get(r.commandId) ?? []), r.id]);
  }
  for (const id of input.triggerCommandIds) {
    const runs = runsByCommand.get(id) ?? [];
    if (runs.length === 0) violations.push(`trigger command ${id} produced no run`);
    else if (runs.length > 1)
      violations.push(`trigger command ${id} produced ${runs.length} runs (${runs.join(', ')})`);
  }
  return result('manual triggers', `${input.triggerCommandIds.length} trigger commands`, violations);
}

export function checkOverlaps(input: CheckInput): CheckResult {
  const violations: string[] = [];
  const groups = new Map<string, Execution[]>();
  for (const e of input.executions) {
    const key = `${e.runId}/${e.task}`;
    groups.set(key, [...(groups.get(key) ?? []), e]);
  }
  for (const [key, list] of groups) {
    const sorted = [...list].sort((a, b) => a.startMs - b.startMs);
    for (let i = 0; i < sorted.length; i++) {
      for (let j = i + 1; j < sorted.length; j++) {
        const a = sorted[i] as Execution;
        const b = sorted[j] as Execution;
        if (b.startMs > a.lastSeenMs) continue;
        const overlapMs = Math.min(a.lastSeenMs, b.lastSeenMs) - b.startMs;
        violations.push(
          `run/task ${key}: attempt ${a.attempt} on ${a.node} (pid ${a.pid}, ${iso(a.startMs)} .. ${iso(a.lastSeenMs)}${a.ended ? '' : ', never ended'}) ` +
            `overlaps attempt ${b.attempt} on ${b.node} (pid ${b.pid}, started ${iso(b.startMs)}) by ${Math.round(overlapMs)} ms`,
        );
      }
    }
  }
  return result(
    'overlapping executions',
    `${input.executions.length} executions of ${groups.size} run/tasks`,
    violations,
  );
}

export function checkAttemptsExecutedOnce(input: CheckInput): CheckResult {
  const violations: string[] = [];
  const byAttempt = new Map<string, Execution[]>();
  for (const e of input.executions) {
    const key = `${e.runId}/${e.task}#${e.attempt}`;
    byAttempt.set(key, [...(byAttempt.get(key) ?? []), e]);
  }
  for (const [key, list] of byAttempt) {
    if (list.length > 1)
      violations.push(
        `attempt ${key} was executed ${list.length} times: ${list.map((e) => `${e.node} pid ${e.pid} at ${iso(e.startMs)}`).join('; ')}`,
      );
  }
  return result('attempts executed once', `${byAttempt.size} attempts in the task log`, violations);
}

export function checkTerminal(input: CheckInput): CheckResult {
  const violations: string[] = [];
  for (const r of input.runs) {
    if (!terminalRunStates.has(r.state))
      violations.push(`run ${r.id} (${r.workflow}, ${r.trigger}) is ${r.state}`);
  }
  for (const a of input.attempts) {
    if (!terminalAttemptStates.has(a.state))
      violations.push(
        `attempt ${a.runId}/${a.task}#${a.attempt} is ${a.state}${a.workerKey ? ` on ${a.workerKey}` : ''}`,
      );
  }
  return result(
    'runs not terminal',
    `${input.runs.length} runs, ${input.attempts.length} attempts`,
    violations,
  );
}

export function checkNoRunFailed(input: CheckInput): CheckResult {
  const violations: string[] = [];
  for (const r of input.runs) {
    if (r.state !== 'failed' && r.state !== 'cancelled') continue;
    const tried = input.attempts
      .filter((a) => a.runId === r.id && a.state !== 'succeeded')
      .map((a) => `${a.task}#${a.attempt} ${a.state}${a.workerKey ? ` on ${a.workerKey}` : ''}`);
    violations.push(
      `run ${r.id} (${r.workflow}, ${r.trigger}) ${r.state}: ${tried.join('; ') || 'no failed attempt'}`,
    );
  }
  return result('runs failed', `${input.runs.length} runs whose tasks always exit 0`, violations);
}

export function checkSucceededConfirmed(input: CheckInput): CheckResult {
  const violations: string[] = [];
  const finished = new Set(
    input.executions.filter((e) => e.ended).map((e) => `${e.runId}/${e.task}#${e.attempt}`),
  );
  let succeeded = 0;
  for (const a of input.attempts) {
    if (a.state !== 'succeeded') continue;
    succeeded += 1;
    const key = `${a.runId}/${a.task}#${a.attempt}`;
    if (!finished.has(key))
      violations.push(`attempt ${key} is succeeded in the database but never finished in the task log`);
  }
  return result('succeeded attempts confirmed', `${succeeded} succeeded attempts`, violations);
}

export function checkLogWellFormed(input: CheckInput): CheckResult {
  const orphans = input.executions.filter((e) => e.orphanLines > 0);
  const violations = [
    ...input.malformedLogLines.map((l) => `malformed line: ${JSON.stringify(l)}`),
    ...orphans.map(
      (e) => `execution ${e.runId}/${e.task}#${e.attempt} pid ${e.pid} has lines but no start line`,
    ),
  ];
  return result('task log well-formed', `${input.executions.length} executions`, violations);
}

/** Every check, in the order the summary prints them. */
export function runChecks(input: CheckInput): CheckResult[] {
  return [
    checkLostFires(input),
    checkDuplicateFires(input),
    checkManualTriggers(input),
    checkOverlaps(input),
    checkAttemptsExecutedOnce(input),
    checkTerminal(input),
    checkNoRunFailed(input),
    checkSucceededConfirmed(input),
    checkLogWellFormed(input),
  ];
}
