import { Agent, request } from 'node:http';
import { dialAddress, type PeerMap, SchedError, withDefaults } from '@sched/core';
import {
  type AttemptRequest,
  type DispatchAnswer,
  dispatchBatchAnswerSchema,
  errorAnswerSchema,
  PROTOCOL_HEADER,
  PROTOCOL_VERSION,
  revokeAnswerSchema,
} from '@sched/protocol';

export type { DispatchAnswer } from '@sched/protocol';

/**
 * The master's side of the master→worker transport (docs/transport.md): HTTP/1.1 keep-alive JSON,
 * `Authorization: Bearer <cluster secret>`. One connection pool per master, shared by every worker.
 */

export interface WorkerClient {
  /** Sends attempts to one worker. Throws `WorkerUnreachableError` when the worker cannot be asked at all. */
  dispatch(address: string, attempts: AttemptRequest[]): Promise<DispatchAnswer[]>;
  /** Asks a worker to kill an attempt; false when the worker does not know it. */
  cancel(address: string, attemptId: string, reason: string): Promise<boolean>;
  /**
   * After a dispatch whose answer was lost: asks the worker (incarnation `workerKey`) whether it
   * has each attempt, and makes it refuse, from now on, every copy of those it does not have up to
   * the given `dispatchSeq`. Answers the attempt's state there, or `revoked`. Throws
   * `WorkerUnreachableError` when the worker cannot be asked or is another incarnation.
   */
  revoke(
    address: string,
    workerKey: string,
    attempts: { attemptId: string; dispatchSeq: number }[],
  ): Promise<Map<string, string>>;
  close(): void;
}

export class WorkerUnreachableError extends SchedError {
  /**
   * The whole request had been written to the connection when it failed: the worker may have
   * received and acted on it (the answer was lost). False: it never got the whole request.
   */
  readonly maybeDelivered: boolean;

  constructor(address: string, cause: unknown, maybeDelivered = true) {
    super(
      'WORKER_UNREACHABLE',
      `worker ${address} could not be reached: ${(cause as Error)?.message ?? cause}`,
      {
        retriable: true,
        cause,
      },
    );
    this.maybeDelivered = maybeDelivered;
  }
}

export interface HttpWorkerClientOptions {
  secret: string;
  /** Per-request deadline. @defaultValue 10000 */
  timeoutMs?: number;
  /** Sockets per worker. @defaultValue 8 */
  maxSockets?: number;
  /** Registered worker address → address to dial (`node.peerMap`). */
  peerMap?: PeerMap;
}

export const DEFAULT_HTTP_WORKER_CLIENT_OPTIONS = {
  timeoutMs: 10_000,
  maxSockets: 8,
} as const satisfies Required<Pick<HttpWorkerClientOptions, 'timeoutMs' | 'maxSockets'>>;

export class HttpWorkerClient implements WorkerClient {
  private readonly agent: Agent;
  private readonly timeoutMs: number;
  private readonly auth: string;
  private readonly peerMap: PeerMap | undefined;

  constructor(options: HttpWorkerClientOptions) {
    const opts = withDefaults(options, DEFAULT_HTTP_WORKER_CLIENT_OPTIONS);
    this.agent = new Agent({ keepAlive: true, maxSockets: opts.maxSockets, keepAliveMsecs: 5_000 });
    this.timeoutMs = opts.timeoutMs;
    this.auth = `Bearer ${opts.secret}`;
    this.peerMap = opts.peerMap;
  }

  async dispatch(address: string, attempts: AttemptRequest[]): Promise<DispatchAnswer[]> {
    const { status, body } = await this.call(address, 'POST', '/v1/attempts/batch', { attempts });
    if (status !== 200) {
      const err = errorAnswerSchema.safeParse(body);
      // The whole batch was refused (draining, malformed, another protocol): nothing ran; every
      // attempt is refused.
      return attempts.map((a) => ({
        attemptId: a.attemptId,
        outcome: 'refused',
        code: err.success ? err.data.error.code : `HTTP_${status}`,
        message: err.success ? err.data.error.message : `worker answered ${status}`,
      }));
    }
    const parsed = dispatchBatchAnswerSchema.safeParse(body);
    // An answer in another shape says nothing about what ran: treated like a lost answer.
    if (!parsed.success) {
      throw new WorkerUnreachableError(
        address,
        new Error('the worker answered the dispatch in an unknown shape'),
      );
    }
    const results = parsed.data.results;
    return attempts.map((a, i): DispatchAnswer => {
      const r = results[i];
      if (r && (r.status === 200 || r.status === 202)) {
        return { attemptId: a.attemptId, outcome: r.accepted === false ? 'duplicate' : 'accepted' };
      }
      return {
        attemptId: a.attemptId,
        outcome: 'refused',
        code: r?.error?.code ?? 'NO_ANSWER',
        message: r?.error?.message ?? 'the worker gave no answer for this attempt',
      };
    });
  }

  async cancel(address: string, attemptId: string, reason: string): Promise<boolean> {
    const { status } = await this.call(
      address,
      'POST',
      `/v1/attempts/${encodeURIComponent(attemptId)}/cancel`,
      {
        reason,
      },
    );
    return status === 200;
  }

  async revoke(
    address: string,
    workerKey: string,
    attempts: { attemptId: string; dispatchSeq: number }[],
  ): Promise<Map<string, string>> {
    const { status, body } = await this.call(address, 'POST', '/v1/attempts/revoke', {
      worker: workerKey,
      attempts,
    });
    const parsed = status === 200 ? revokeAnswerSchema.safeParse(body) : null;
    if (!parsed?.success) {
      const err = errorAnswerSchema.safeParse(body);
      const what = err.success ? `${err.data.error.code} ${err.data.error.message}` : 'an unknown shape';
      throw new WorkerUnreachableError(address, new Error(`revoke answered ${status} ${what}`));
    }
    return new Map(parsed.data.results.map((r) => [r.attemptId, r.state]));
  }

  close(): void {
    this.agent.destroy();
  }

  private call(
    address: string,
    method: string,
    path: string,
    payload: unknown,
  ): Promise<{ status: number; body: unknown }> {
    const [host, portText] = splitAddress(dialAddress(this.peerMap, address));
    const data = Buffer.from(JSON.stringify(payload));
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host,
          port: Number(portText),
          method,
          path,
          agent: this.agent,
          timeout: this.timeoutMs,
          headers: {
            Authorization: this.auth,
            [PROTOCOL_HEADER]: String(PROTOCOL_VERSION),
            'Content-Type': 'application/json',
            'Content-Length': data.length,
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let body: unknown = {};
            try {
              body = text ? JSON.parse(text) : {};
            } catch {
              body = { error: { code: 'BAD_RESPONSE', message: text.slice(0, 200) } };
            }
            resolve({ status: res.statusCode ?? 0, body });
          });
          res.on('error', (err) => reject(new WorkerUnreachableError(address, err)));
        },
      );
      // Once the whole request is written, a failure leaves it unknown whether the worker got it.
      let written = false;
      req.on('finish', () => {
        written = true;
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)));
      req.on('error', (err) => reject(new WorkerUnreachableError(address, err, written)));
      req.end(data);
    });
  }
}

function splitAddress(address: string): [string, string] {
  const i = address.lastIndexOf(':');
  return [address.slice(0, i), address.slice(i + 1)];
}
