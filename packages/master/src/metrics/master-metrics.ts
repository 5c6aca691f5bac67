import { type Logger, withDefaults } from '@sched/core';
import type { SessionStatusKind } from '@sched/registry';
import { registerSessionStateGauge } from '@sched/registry';
import type { Db } from '@sched/store';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { WorkerClient } from '../dispatch/worker-client.js';
import { type ApiRoute, defineRoute, textResponse } from '../http/api-route.js';
import type { FiredRun } from '../scheduler/schedule-firer.js';
import { countActiveAttemptsByState, countActiveRunsByState } from './metrics-queries.js';

/**
 * A master's Prometheus metrics (docs/api.md#metrics), on its own registry (several masters can
 * live in one test process). Counts from PostgreSQL are read at scrape time, bounded by
 * `dbTimeoutMs` (a scrape must not hang on a sick database: the series are then left out).
 *
 * | metric                                   | kind      | what                                           |
 * |------------------------------------------|-----------|------------------------------------------------|
 * | sched_trigger_lag_seconds                | histogram | run committed − scheduled fire time (this master's fires) |
 * | sched_fire_to_start_seconds              | histogram | first task started on a worker − fire time, per scheduled run (reports this master applied) |
 * | sched_runs{state}                        | gauge     | active runs by state: pending, running (cluster-wide) |
 * | sched_runs_ended_total{state}            | counter   | runs this master's driver ended: succeeded, failed, cancelled |
 * | sched_task_attempts{state}               | gauge     | active attempts by state: pending, dispatched, running (cluster-wide) |
 * | sched_dispatch_duration_seconds{outcome} | histogram | one dispatch call to a worker, by outcome      |
 * | sched_failovers_total{role}              | counter   | incarnations failed over by this master as leader |
 * | sched_master_leader                      | gauge     | 1 while this master is the leader              |
 * | sched_registry_session_state{state}      | gauge     | 1 for the ZooKeeper session's current state    |
 */

export interface MasterMetricsNode {
  readonly pool: Db | undefined;
  readonly isLeader: boolean;
  readonly session: { readonly status: { readonly kind: SessionStatusKind } } | undefined;
}

export interface MasterMetricsOptions {
  logger?: Logger;
  /** Bound of the database counts read at scrape time. @defaultValue 2000 */
  dbTimeoutMs?: number;
  /** Also collect prom-client's default process metrics. @defaultValue true */
  defaultMetrics?: boolean;
}

export const DEFAULT_MASTER_METRICS_OPTIONS = {
  dbTimeoutMs: 2_000,
  defaultMetrics: true,
} as const satisfies Required<Pick<MasterMetricsOptions, 'dbTimeoutMs' | 'defaultMetrics'>>;

const ACTIVE_RUN_STATES = ['pending', 'running'];
const ACTIVE_ATTEMPT_STATES = ['pending', 'dispatched', 'running'];
const ENDED_RUN_STATES = ['succeeded', 'failed', 'cancelled'] as const;

export class MasterMetrics {
  readonly registry = new Registry();
  private readonly triggerLag: Histogram;
  private readonly dispatchDuration: Histogram<'outcome'>;
  private readonly fireToStart: Histogram;
  private readonly failovers: Counter<'role'>;
  private readonly runsEnded: Counter<'state'>;

  constructor(node: MasterMetricsNode, options: MasterMetricsOptions = {}) {
    const opts = withDefaults(options, DEFAULT_MASTER_METRICS_OPTIONS);
    const { dbTimeoutMs, logger: log } = opts;
    if (opts.defaultMetrics) collectDefaultMetrics({ register: this.registry });
    this.triggerLag = new Histogram({
      name: 'sched_trigger_lag_seconds',
      help: 'Scheduled runs: time from the fire time to the commit of the run row',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers: [this.registry],
    });
    this.fireToStart = new Histogram({
      name: 'sched_fire_to_start_seconds',
      help: 'Scheduled runs: time from the fire time to the start of its first task on a worker (observed by the master that applied the report)',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300],
      registers: [this.registry],
    });
    this.dispatchDuration = new Histogram({
      name: 'sched_dispatch_duration_seconds',
      help: 'Duration of one dispatch call (a batch of attempts) to a worker, by outcome',
      labelNames: ['outcome'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [this.registry],
    });
    this.failovers = new Counter({
      name: 'sched_failovers_total',
      help: 'Incarnations failed over by this master while leader, by role',
      labelNames: ['role'],
      registers: [this.registry],
    });
    for (const role of ['master', 'worker']) this.failovers.inc({ role }, 0);
    this.runsEnded = new Counter({
      name: 'sched_runs_ended_total',
      help: "Runs this master's run driver brought to an end, by final state",
      labelNames: ['state'],
      registers: [this.registry],
    });
    for (const state of ENDED_RUN_STATES) this.runsEnded.inc({ state }, 0);
    new Gauge({
      name: 'sched_master_leader',
      help: '1 while this master is the cluster leader',
      registers: [this.registry],
      collect() {
        this.set(node.isLeader ? 1 : 0);
      },
    });
    registerSessionStateGauge(this.registry, () => node.session?.status.kind);
    const byState = (
      name: string,
      help: string,
      states: string[],
      count: (db: Db) => Promise<Map<string, number>>,
    ) =>
      new Gauge({
        name,
        help,
        labelNames: ['state'],
        registers: [this.registry],
        async collect() {
          this.reset();
          if (!node.pool) return;
          let timer: NodeJS.Timeout | undefined;
          try {
            const counts = await Promise.race([
              count(node.pool),
              new Promise<never>((_, reject) => {
                timer = setTimeout(
                  () => reject(new Error(`no answer within ${dbTimeoutMs} ms`)),
                  dbTimeoutMs,
                );
              }),
            ]);
            for (const s of states) this.set({ state: s }, counts.get(s) ?? 0);
          } catch (err) {
            log?.warn({ err }, `metrics: could not count ${name}`);
          } finally {
            clearTimeout(timer);
          }
        },
      });
    byState(
      'sched_runs',
      'Active workflow runs by state (cluster-wide)',
      ACTIVE_RUN_STATES,
      countActiveRunsByState,
    );
    byState(
      'sched_task_attempts',
      'Active task attempts by state (cluster-wide)',
      ACTIVE_ATTEMPT_STATES,
      countActiveAttemptsByState,
    );
  }

  /** For ScheduleFirer's `onRunsCreated`: observes created − fire time of each run fired. */
  /** For the report applier: fire time → first task started, per scheduled run. */
  observeFireToStart(ms: readonly number[]): void {
    for (const x of ms) this.fireToStart.observe(Math.max(0, x) / 1000);
  }

  observeFiredRuns(runs: readonly Pick<FiredRun, 'fireTimeMs' | 'committedAtMs'>[]): void {
    for (const r of runs) this.triggerLag.observe(Math.max(0, r.committedAtMs - r.fireTimeMs) / 1000);
  }

  /** For the run driver's `onRunEnded`. */
  recordRunEnded(state: (typeof ENDED_RUN_STATES)[number]): void {
    this.runsEnded.inc({ state });
  }

  /** For the failover coordinator: one incarnation failed over (its record was written). */
  recordFailover(role: 'master' | 'worker'): void {
    this.failovers.inc({ role });
  }

  /** Wraps a worker client so each dispatch call is timed (outcome: ok | refused | unreachable). */
  instrumentClient<C extends WorkerClient>(client: C): C {
    const histogram = this.dispatchDuration;
    const dispatch = client.dispatch.bind(client);
    return Object.assign(Object.create(client) as C, {
      async dispatch(address: string, attempts: Parameters<WorkerClient['dispatch']>[1]) {
        const end = histogram.startTimer();
        try {
          const answers = await dispatch(address, attempts);
          end({
            outcome: answers.every((a) => a.outcome === 'accepted' || a.outcome === 'duplicate')
              ? 'ok'
              : 'refused',
          });
          return answers;
        } catch (err) {
          end({ outcome: 'unreachable' });
          throw err;
        }
      },
    });
  }

  /** The public `GET /metrics` route in Prometheus text format. */
  route(): ApiRoute {
    return metricsRoute(this.registry);
  }
}

export function metricsRoute(registry: Registry): ApiRoute {
  return defineRoute({
    method: 'GET',
    url: '/metrics',
    summary: 'Prometheus metrics (text exposition format)',
    tags: ['probes'],
    public: true,
    accessLog: 'debug',
    responses: { 200: textResponse('text/plain', 'the metrics') },
    handler: async (_req, reply) =>
      reply
        .code(200)
        .type(registry.contentType)
        .send(await registry.metrics()),
  });
}
