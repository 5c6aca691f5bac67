// The task log: every chaos task appends one line when it starts, one every tick (0.5 s) while
// it runs and one when it ends, to one shared file (O_APPEND: short lines from concurrent
// writers do not interleave). A line is
//   <start|tick|end> <run id> <task> <attempt> <node> <shell pid> <epoch ns>
// The ticks matter for tasks that are killed (no end line): the last tick bounds from below how
// long such a task was alive, so an overlap with its re-run can still be proven.
import { readFileSync, writeFileSync } from 'node:fs';

/** The task program, written next to the log. Arguments: the log file, the number of ticks. */
export const taskScript = `#!/bin/sh
# sched chaos task: appends start, tick and end lines to the task log (see task-log.ts).
log=$1
ticks=$2
mark() { echo "$1 $SCHED_RUN_ID $SCHED_TASK_NAME $SCHED_ATTEMPT \${CHAOS_NODE:-unknown} $$ $(date +%s%N)" >> "$log"; }
mark start
i=0
while [ "$i" -lt "$ticks" ]; do
  sleep 0.5
  i=$((i + 1))
  mark tick
done
mark end
`;

export function writeTaskScript(path: string): void {
  writeFileSync(path, taskScript, { mode: 0o755 });
}

/**
 * The shell command of a chaos task that runs for about `ticks` × 0.5 s. With `escapeGroup`, the
 * script runs in a new session (`setsid -w`), out of reach of the worker's process-group kills:
 * a negative control, to see the checker report the overlaps such a task causes.
 */
export function taskCommand(scriptPath: string, logPath: string, ticks: number, escapeGroup = false): string {
  return `${escapeGroup ? 'setsid -w ' : ''}sh ${scriptPath} ${logPath} ${ticks}`;
}

/** One execution of a task attempt: one shell process, from its start line to its last line. */
export interface Execution {
  runId: number;
  task: string;
  attempt: number;
  node: string;
  pid: number;
  /** Epoch ms (fractional) of the start line. */
  startMs: number;
  /** Epoch ms of the last line seen (end, or the last tick of a killed task). */
  lastSeenMs: number;
  ended: boolean;
  /** Lines of this execution seen without a start line (a damaged log). */
  orphanLines: number;
}

export interface ParsedTaskLog {
  executions: Execution[];
  /** Lines that do not parse (reported, never silently dropped). */
  malformed: string[];
}

export function parseTaskLog(text: string): ParsedTaskLog {
  const byKey = new Map<string, Execution>();
  const started = new Set<string>();
  const malformed: string[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const parts = line.trim().split(/\s+/);
    const [kind, run, task, attempt, node, pid, ns] = parts;
    if (
      parts.length !== 7 ||
      (kind !== 'start' && kind !== 'tick' && kind !== 'end') ||
      !/^\d+$/.test(run ?? '') ||
      !/^\d+$/.test(attempt ?? '') ||
      !/^\d+$/.test(pid ?? '') ||
      !/^\d{10,}$/.test(ns ?? '')
    ) {
      malformed.push(line);
      continue;
    }
    const atMs = Number(BigInt(ns as string) / 1000n) / 1000;
    const key = `${run}/${task}/${attempt}/${node}/${pid}`;
    let e = byKey.get(key);
    if (!e) {
      e = {
        runId: Number(run),
        task: task as string,
        attempt: Number(attempt),
        node: node as string,
        pid: Number(pid),
        startMs: atMs,
        lastSeenMs: atMs,
        ended: false,
        orphanLines: kind === 'start' ? 0 : 1,
      };
      byKey.set(key, e);
    } else if (kind === 'start' && !started.has(key)) {
      e.startMs = atMs;
    } else if (kind === 'start') {
      // A second start with the same shell pid: a recycled pid; keep it apart.
      byKey.set(`${key}@${atMs}`, e);
      e = {
        runId: Number(run),
        task: task as string,
        attempt: Number(attempt),
        node: node as string,
        pid: Number(pid),
        startMs: atMs,
        lastSeenMs: atMs,
        ended: false,
        orphanLines: 0,
      };
      byKey.set(key, e);
    }
    if (kind === 'start') started.add(key);
    else if (!started.has(key) && e.orphanLines === 0) e.orphanLines = 1;
    e.lastSeenMs = Math.max(e.lastSeenMs, atMs);
    if (kind === 'end') e.ended = true;
  }
  return { executions: [...new Set(byKey.values())], malformed };
}

export function readTaskLog(path: string): ParsedTaskLog {
  let text = '';
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  return parseTaskLog(text);
}
