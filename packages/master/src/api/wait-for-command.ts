import type { Db } from '@sched/store';
import { runIdsOfCommand } from './api-queries.js';

/**
 * Commands (trigger, re-run) are durable rows that any master claims; the API waits a bounded
 * time for the run they create so the caller gets its id. An empty list means no master claimed
 * it yet (the command stays queued and will still run).
 */
export async function waitForCommandRuns(db: Db, commandId: number, timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 20; ; delay = Math.min(delay * 2, 250)) {
    const ids = await runIdsOfCommand(db, commandId);
    if (ids.length > 0 || Date.now() >= deadline) return ids;
    await new Promise((r) => setTimeout(r, Math.min(delay, Math.max(0, deadline - Date.now()))));
  }
}
