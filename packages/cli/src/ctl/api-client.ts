import { type IncomingMessage, request } from 'node:http';
import { DefinitionError, type Issue, NotFoundError, SchedError, UsageError } from '@sched/core';

/**
 * A small client for the master's REST API (docs/api.md): JSON in and out, the cluster secret as
 * a Bearer token, a bounded time per call, and the server's `{ error: { code, message, issues } }`
 * turned back into SchedErrors (a 422 becomes a DefinitionError listing every issue).
 */

/** The master could not be asked at all (refused, reset, timed out): another master may answer. */
export class MasterUnreachableError extends SchedError {
  constructor(
    readonly address: string,
    cause: unknown,
  ) {
    super('MASTER_UNREACHABLE', `master ${address} did not answer: ${(cause as Error)?.message ?? cause}`, {
      retriable: true,
      cause,
    });
  }
}

/** The API answered with an error status. */
class ApiError extends SchedError {
  constructor(
    readonly status: number,
    code: string,
    message: string,
    readonly issues: readonly Issue[] = [],
  ) {
    super(code, message, { retriable: status === 503 });
  }
}

export interface ApiRequest {
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  body?: unknown;
}

export class ApiClient {
  constructor(
    readonly address: string,
    private readonly secret: string,
    private readonly timeoutMs: number,
  ) {}

  async json<T>(r: ApiRequest): Promise<T> {
    const res = await this.send(r, this.timeoutMs);
    const text = await readAll(res);
    if ((res.statusCode ?? 0) >= 400) throw errorFrom(res.statusCode ?? 0, text, r);
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new SchedError(
        'BAD_RESPONSE',
        `master ${this.address} answered ${r.path} with something that is not JSON`,
      );
    }
  }

  /** Opens a streaming response (task logs); errors are thrown like `json`. */
  async stream(r: ApiRequest): Promise<IncomingMessage> {
    const res = await this.send(r, this.timeoutMs);
    if ((res.statusCode ?? 0) >= 400) throw errorFrom(res.statusCode ?? 0, await readAll(res), r);
    return res;
  }

  private send(r: ApiRequest, timeoutMs: number): Promise<IncomingMessage> {
    const i = this.address.lastIndexOf(':');
    const body = r.body === undefined ? undefined : Buffer.from(JSON.stringify(r.body));
    return new Promise((resolve, reject) => {
      const req = request({
        host: this.address.slice(0, i),
        port: Number(this.address.slice(i + 1)),
        method: r.method,
        path: r.path,
        agent: false,
        headers: {
          Authorization: `Bearer ${this.secret}`,
          Accept: 'application/json',
          ...(body ? { 'Content-Type': 'application/json', 'Content-Length': String(body.length) } : {}),
        },
      });
      // Bounds the wait for the response head; a followed log may then stream for as long as the task runs.
      const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      req.once('response', (res) => {
        clearTimeout(timer);
        resolve(res);
      });
      req.once('error', (err) => {
        clearTimeout(timer);
        reject(new MasterUnreachableError(this.address, err));
      });
      req.end(body);
    });
  }
}

async function readAll(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of res as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}

function errorFrom(status: number, text: string, r: ApiRequest): SchedError {
  let error: { code?: string; message?: string; issues?: Issue[] } = {};
  try {
    error = (JSON.parse(text) as { error?: typeof error }).error ?? {};
  } catch {
    // not our JSON error body
  }
  const message = error.message ?? `${r.method} ${r.path} failed with HTTP ${status}`;
  const issues = error.issues ?? [];
  if (status === 422 && error.code === 'DEFINITION_INVALID') {
    return new DefinitionError(message.split('\n')[0] ?? message, issues);
  }
  if (status === 404) return new NotFoundError(message);
  // A parameter the master refused (`--limit lots`, `--state sleeping`) is bad input, like a bad flag.
  if (status === 400 && error.code === 'REQUEST_INVALID') return new UsageError(message);
  if (status === 401) {
    return new ApiError(status, 'UNAUTHENTICATED', `the master refused the cluster secret: ${message}`);
  }
  return new ApiError(status, error.code ?? `HTTP_${status}`, message, issues);
}
