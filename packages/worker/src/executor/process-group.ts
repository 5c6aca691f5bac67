import { readdirSync, readFileSync } from 'node:fs';
import { sleep } from '@sched/core';

/**
 * Process-group control. Every task process is spawned `detached`, which makes it the leader of
 * a new process group (pgid = its pid); everything it forks stays in that group unless it calls
 * setsid/setpgid on purpose. Signalling `-pgid` reaches the whole tree at once — the whole point:
 * xxl-job's timeout interrupted a Java thread and left the real work running.
 *
 * Liveness reads /proc (Linux): a zombie — exited, waiting to be reaped by whatever init the
 * machine has — counts as gone, since it runs nothing and `kill(pid, 0)` would still succeed on it.
 */

/** Sends `signal` to every process of group `pgid`. False if the group no longer exists. */
export function signalGroup(pgid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}

/** Pids of the live (non-zombie) processes in group `pgid`. */
export function livePidsInGroup(pgid: number): number[] {
  try {
    process.kill(-pgid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return [];
    throw err;
  }
  const pids: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [pgid]; // no /proc: trust kill(0), zombies included
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (stat && stat.pgrp === pgid && stat.state !== 'Z') pids.push(Number(entry));
  }
  return pids;
}

/** Whether `pid` is a live process (not gone, not a zombie). */
export function isProcessAlive(pid: number): boolean {
  const stat = readStat(pid);
  if (stat) return stat.state !== 'Z' && stat.state !== 'X';
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function readStat(pid: number): { state: string; pgrp: number } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid pgrp …" — comm may contain spaces and parentheses: split after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: rest[0] ?? '?', pgrp: Number(rest[2]) };
}

export type TerminationOutcome = 'already-gone' | 'terminated' | 'killed' | 'survived';

/**
 * SIGTERM to the group, up to `graceMs` for it to exit, then SIGKILL to the group (`graceMs`
 * 0: SIGKILL at once).
 * Resolves once no live process is left in the group (or, after SIGKILL, a bounded wait ran out:
 * `survived`, which only an uninterruptible process in the kernel can cause).
 */
export async function terminateGroup(
  pgid: number,
  graceMs: number,
  pollMs = 20,
): Promise<TerminationOutcome> {
  if (livePidsInGroup(pgid).length === 0) return 'already-gone';
  // No grace (self-fencing, docs/decisions/0004-fencing-kill.md): straight to SIGKILL below.
  if (graceMs > 0 && !signalGroup(pgid, 'SIGTERM')) return 'already-gone';
  // SIGCONT too: a stopped process (SIGSTOP, ^Z) would not act on SIGTERM until continued.
  signalGroup(pgid, 'SIGCONT');
  const deadline = performance.now() + graceMs;
  while (performance.now() < deadline) {
    await sleep(Math.min(pollMs, Math.max(1, deadline - performance.now())));
    if (livePidsInGroup(pgid).length === 0) return 'terminated';
  }
  signalGroup(pgid, 'SIGKILL');
  const killDeadline = performance.now() + 5_000;
  while (performance.now() < killDeadline) {
    if (livePidsInGroup(pgid).length === 0) return 'killed';
    await sleep(pollMs);
  }
  return 'survived';
}
