import type { Db, TaskDefinition, WorkflowDefinition } from '@sched/store';
import { type AttemptView, type PlannedTask, planRun, type RunPlan } from './dag-planner.js';
import { type DriveAttempt, type DriveRun, definitionKey, loadDefinitions } from './run-drive-queries.js';

/**
 * The run driver's plans: the workflow definitions of its runs (loaded once per workflow
 * version; a version never changes) and `planRun` over a run's definition and attempt rows.
 */

/** A run's definition, its tasks by name, and its plan now. */
export interface PlannedRun {
  def: WorkflowDefinition;
  tasks: Map<string, TaskDefinition>;
  plan: RunPlan;
}

export class RunPlans {
  private readonly definitions = new Map<string, WorkflowDefinition>();

  /** Loads the definitions of `runs` not cached yet, through `db` (a pool, or a transaction's client). */
  async load(db: Db, runs: readonly DriveRun[]): Promise<void> {
    const missing = runs.filter((r) => !this.definitions.has(definitionKey(r.workflowId, r.version)));
    if (missing.length > 0) {
      const loaded = await loadDefinitions(
        db,
        missing.map((r) => ({ workflowId: r.workflowId, version: r.version })),
      );
      for (const [k, v] of loaded) this.definitions.set(k, v);
    }
    for (const r of runs) r.workflowParams = this.definitionOf(r)?.params ?? {};
  }

  /** The run's definition (loaded by `load`), or undefined when that version does not exist. */
  definitionOf(run: DriveRun): WorkflowDefinition | undefined {
    return this.definitions.get(definitionKey(run.workflowId, run.version));
  }

  /** Plans `run` of definition `def` from its attempt rows at `now`. */
  plan(def: WorkflowDefinition, attempts: readonly DriveAttempt[], now: number): PlannedRun {
    const tasks = new Map(def.tasks.map((t) => [t.name, t]));
    return { def, tasks, plan: planRun(def.tasks.map(toPlannedTask), attempts.map(toAttemptView), now) };
  }
}

function toPlannedTask(t: TaskDefinition): PlannedTask {
  return {
    name: t.name,
    dependsOn: t.dependsOn,
    retries: {
      max: t.retries.max,
      backoff: t.retries.backoff,
      delayMs: t.retries.delayMs,
      ...(t.retries.maxDelayMs === null ? {} : { maxDelayMs: t.retries.maxDelayMs }),
    },
    failover: t.failover,
  };
}

function toAttemptView(a: DriveAttempt): AttemptView {
  return {
    taskName: a.taskName,
    attempt: a.attempt,
    shardIndex: a.shardIndex,
    shardTotal: a.shardTotal,
    state: a.state,
    endedAt: a.endedAtMs,
  };
}
