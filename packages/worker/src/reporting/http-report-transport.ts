import { SchedError } from '@sched/core';
import {
  type AttemptReport,
  PROTOCOL_HEADER,
  PROTOCOL_VERSION,
  type ReportAck,
  reportAckSchema,
} from '@sched/protocol';

export interface HttpReportTransportOptions {
  /** Addresses (`host:port`) of the live masters, e.g. from the registry; asked on every send. */
  masters: () => readonly string[];
  /** The cluster secret, sent as `Authorization: Bearer <secret>`. */
  secret: string;
  /** Per-request timeout. @defaultValue 5000 */
  timeoutMs?: number;
}

export const DEFAULT_HTTP_REPORT_TRANSPORT_OPTIONS = { timeoutMs: 5_000 } as const satisfies Required<
  Pick<HttpReportTransportOptions, 'timeoutMs'>
>;

/**
 * A `send` for ReportSender over the transport in docs/transport.md: `POST /v1/reports` with
 * `{ reports: [...] }` to a live master, trying each live master in turn (starting after the
 * last one that answered) until one acknowledges. Any master will do: the one that applies a
 * report wakes the run's owner.
 */
export function httpReportTransport(
  opts: HttpReportTransportOptions,
): (batch: AttemptReport[]) => Promise<ReportAck> {
  let preferred = 0;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_HTTP_REPORT_TRANSPORT_OPTIONS.timeoutMs;
  return async (batch) => {
    const masters = opts.masters();
    if (masters.length === 0)
      throw new SchedError('NO_MASTER', 'no live master to report to', { retriable: true });
    const errors: string[] = [];
    for (let i = 0; i < masters.length; i++) {
      const index = (preferred + i) % masters.length;
      const address = masters[index] as string;
      try {
        const res = await fetch(`http://${address}/v1/reports`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${opts.secret}`,
            'content-type': 'application/json',
            [PROTOCOL_HEADER]: String(PROTOCOL_VERSION),
          },
          body: JSON.stringify({ reports: batch }),
          signal: AbortSignal.timeout(timeoutMs),
        });
        const text = await res.text();
        if (res.status === 422) {
          // Every report of the batch was rejected: final, like a 200's `rejected` list.
          const ack = parseAck(text);
          if (ack) return ack;
        }
        if (res.status !== 200) {
          errors.push(`${address}: HTTP ${res.status} ${text.slice(0, 200)}`);
          continue;
        }
        const ack = parseAck(text);
        if (!ack) {
          errors.push(`${address}: answer is not { acked: [...], rejected?: [...] }`);
          continue;
        }
        preferred = index;
        return ack;
      } catch (err) {
        errors.push(`${address}: ${(err as Error).message}`);
      }
    }
    throw new SchedError('REPORT_NOT_DELIVERED', `no master took the reports: ${errors.join('; ')}`, {
      retriable: true,
    });
  };
}

function parseAck(text: string): ReportAck | null {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return null;
  }
  const parsed = reportAckSchema.safeParse(body);
  return parsed.success ? parsed.data : null;
}
