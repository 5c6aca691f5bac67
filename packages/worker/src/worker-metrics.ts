import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SessionStatusKind } from '@sched/registry';
import { registerSessionStateGauge } from '@sched/registry';
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';

/**
 * A worker's Prometheus metrics, read from the WorkerNode at scrape time. Takes the narrow
 * shape below (WorkerNode has these fields) so the master package does not import the worker.
 *
 * | metric                              | kind  | what                                    |
 * |-------------------------------------|-------|-----------------------------------------|
 * | sched_worker_running_tasks          | gauge | attempts running now                    |
 * | sched_worker_capacity               | gauge | most attempts run at once               |
 * | sched_registry_session_state{state} | gauge | 1 for the ZooKeeper session's state     |
 * | sched_worker_report_spool_failing   | gauge | 1 while the report spool cannot be written |
 * | sched_worker_reports_unspooled      | gauge | reports held in memory only (not on disk) |
 */
export interface WorkerMetricsNode {
  readonly executor: { readonly running: number; readonly capacity: number } | undefined;
  readonly session: { readonly status: { readonly kind: SessionStatusKind } } | undefined;
  readonly sender?:
    | { readonly spoolHealth: { readonly state: 'ok' | 'failing'; readonly unspooled: number } }
    | undefined;
}

export interface WorkerMetrics {
  readonly registry: Registry;
  /** Answers a scrape (for a public `GET /metrics` route on the worker's HTTP server). */
  serve(req: IncomingMessage, res: ServerResponse): Promise<void>;
}

export function registerWorkerMetrics(
  node: WorkerMetricsNode,
  opts: { defaultMetrics?: boolean } = {},
): WorkerMetrics {
  const registry = new Registry();
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  new Gauge({
    name: 'sched_worker_running_tasks',
    help: 'Task attempts running on this worker now',
    registers: [registry],
    collect() {
      this.set(node.executor?.running ?? 0);
    },
  });
  new Gauge({
    name: 'sched_worker_capacity',
    help: 'Most task attempts this worker runs at once',
    registers: [registry],
    collect() {
      this.set(node.executor?.capacity ?? 0);
    },
  });
  new Gauge({
    name: 'sched_worker_report_spool_failing',
    help: 'Whether attempt reports cannot be written to the spool (1): they are held in memory and sent anyway, lost if the worker stops',
    registers: [registry],
    collect() {
      this.set(node.sender?.spoolHealth.state === 'failing' ? 1 : 0);
    },
  });
  new Gauge({
    name: 'sched_worker_reports_unspooled',
    help: 'Attempt reports held in memory only: not acknowledged by a master and not written to the spool',
    registers: [registry],
    collect() {
      this.set(node.sender?.spoolHealth.unspooled ?? 0);
    },
  });
  registerSessionStateGauge(registry, () => node.session?.status.kind);
  return {
    registry,
    async serve(_req, res) {
      const body = await registry.metrics();
      res.writeHead(200, {
        'Content-Type': registry.contentType,
        'Content-Length': String(Buffer.byteLength(body)),
      });
      res.end(body);
    },
  };
}
