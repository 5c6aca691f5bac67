// The chaos workload: every-second schedules (two with misfire policy fire-all, whose every
// fire time must get a run, and one with the default fire-once-now, whose gaps must end in a
// misfire run) and periodic manual triggers, among them a long task (~15 s) that outlives the
// session timeout + failover delay, so a worker killed or frozen while running it leaves a
// task that must be dead before its re-run starts. Every task is the task-log script.
import { join } from 'node:path';
import type { MisfirePolicy } from './checker.js';
import type { SeededRandom } from './random.js';
import { taskCommand, writeTaskScript } from './task-log.js';
import type { TestCluster } from './test-cluster.js';

export interface ScheduledWorkflow {
  name: string;
  misfire: MisfirePolicy;
  periodMs: number;
}

export const scheduledWorkflows: ScheduledWorkflow[] = [
  { name: 'chaos-every-second-a', misfire: 'fire-all', periodMs: 1000 },
  { name: 'chaos-every-second-b', misfire: 'fire-all', periodMs: 1000 },
  { name: 'chaos-every-second-c', misfire: 'fire-once-now', periodMs: 1000 },
];

/** Manually triggered only. */
export const longWorkflow = 'chaos-long';

export class Workload {
  readonly taskLog: string;
  private readonly script: string;
  readonly triggerCommandIds: number[] = [];
  private triggering: Promise<void> | undefined;
  private stopTriggers = false;
  private triggersTried = 0;
  /** Tags of triggers whose insert got no answer, settled by `stopTriggering`. */
  private readonly unanswered: string[] = [];
  /** Triggers whose insert got no answer and did not commit: never queued, nothing to check. */
  triggersNotQueued = 0;
  /** Triggers that could not even be settled afterwards (PostgreSQL healthy again): a harness fault. */
  triggerErrors = 0;

  constructor(
    private readonly cluster: TestCluster,
    private readonly random: SeededRandom,
    dir: string = cluster.dataRoot,
    /** Negative control: tasks escape their process group (see taskCommand). */
    private readonly escapeTasks = false,
  ) {
    this.taskLog = join(dir, 'tasks.log');
    this.script = join(dir, 'chaos-task.sh');
  }

  private command(ticks: number): string {
    return taskCommand(this.script, this.taskLog, ticks, this.escapeTasks);
  }

  /** Applies the workflows; their schedules start firing at the next second. */
  async apply(): Promise<void> {
    writeTaskScript(this.script);
    const [a, b, c] = scheduledWorkflows;
    await this.cluster.apply(
      {
        name: a?.name,
        schedule: { cron: '* * * * * ?', misfire: a?.misfire },
        tasks: [
          { name: 'work', type: 'shell', command: this.command(3) },
          { name: 'after', type: 'shell', command: this.command(1), dependsOn: ['work'] },
        ],
      },
      {
        name: b?.name,
        schedule: { cron: '* * * * * ?', misfire: b?.misfire },
        tasks: [{ name: 'work', type: 'shell', command: this.command(2) }],
      },
      {
        name: c?.name,
        schedule: { cron: '* * * * * ?', misfire: c?.misfire },
        tasks: [{ name: 'work', type: 'shell', command: this.command(1) }],
      },
      {
        name: longWorkflow,
        tasks: [
          { name: 'long', type: 'shell', command: this.command(30) },
          { name: 'short', type: 'shell', command: this.command(1), dependsOn: ['long'] },
        ],
      },
    );
  }

  /** Queues a manual trigger every 2–5 s (the long workflow, or one of the scheduled ones) until stopped. */
  startTriggers(): void {
    this.triggering = (async () => {
      while (!this.stopTriggers) {
        const workflow = this.random.chance(0.6) ? longWorkflow : this.random.pick(scheduledWorkflows).name;
        // Each trigger is tagged, so one whose answer was lost (PostgreSQL restarted or cut while
        // it committed) is found afterwards: it either committed, and is checked like the others,
        // or it did not, and was never queued.
        const tag = `chaos#${++this.triggersTried}`;
        try {
          this.triggerCommandIds.push(await this.cluster.trigger(workflow, { source: 'chaos' }, tag));
        } catch {
          this.unanswered.push(tag);
        }
        const waitMs = this.random.int(2000, 5000);
        for (let waited = 0; waited < waitMs && !this.stopTriggers; waited += 100) {
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    })();
  }

  async stopTriggering(): Promise<void> {
    this.stopTriggers = true;
    await this.triggering;
    // PostgreSQL is back (the nemesis has healed): settle the triggers whose answer was lost.
    for (const tag of this.unanswered) {
      try {
        const rows = await this.cluster.query<{ id: string }>(
          `SELECT id FROM commands WHERE requested_by = $1`,
          [tag],
        );
        if (rows[0]) this.triggerCommandIds.push(Number(rows[0].id));
        else this.triggersNotQueued += 1;
      } catch {
        this.triggerErrors += 1;
      }
    }
    this.unanswered.length = 0;
  }
}
