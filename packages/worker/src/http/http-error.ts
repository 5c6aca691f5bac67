import { SchedError } from '@sched/core';

/** An error answered to an HTTP client as `status` with body `{ error: { code, message, issues? } }`. */
export class HttpError extends SchedError {
  constructor(
    readonly status: number,
    code: string,
    message: string,
    readonly extra: {
      issues?: readonly { path: string; message: string }[];
      headers?: Record<string, string>;
    } = {},
  ) {
    super(code, message, { retriable: status === 429 || status === 503 });
  }
}

export function errorBody(
  code: string,
  message: string,
  issues?: readonly { path: string; message: string }[],
) {
  return JSON.stringify({ error: issues ? { code, message, issues } : { code, message } });
}

/**
 * A complete HTTP/1.1 error response for a socket that never became a request (garbage, headers
 * too large, a timeout): written raw by the server's `clientError` handler, then the socket closes.
 */
export function rawErrorResponse(status: number, reason: string, code: string, message: string): string {
  const body = errorBody(code, message);
  return (
    `HTTP/1.1 ${status} ${reason}\r\n` +
    'Content-Type: application/json; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    'Connection: close\r\n\r\n' +
    body
  );
}
