import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import type { Readable } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import { type HttpNetworkPolicy, HttpTargetRefusedError } from './http-networks.js';

/**
 * The request of an http task (docs/tasks.md#task-types), sent with node:http(s) rather than
 * fetch so that every address is checked against the worker's network policy before it is dialled
 * (docs/tasks.md#which-networks-an-http-task-may-reach):
 *
 * - an IP literal is checked before anything is sent;
 * - a host name is resolved first, every address it resolves to is checked, and the connection
 *   goes to those checked addresses only (the socket's lookup hands them back; no second
 *   resolution, so no DNS-rebinding gap);
 * - redirects are followed here, not by the HTTP client, at most `maxRedirects` of them, each
 *   target checked the same way before it is dialled;
 * - no connection is pooled or reused (`agent: false`): a socket is only ever used for the
 *   address it was checked for.
 *
 * Redirects follow the fetch standard: 303 (and 301/302 after a POST) become a GET without the
 * body; 307 and 308 repeat the method and body; Authorization, Cookie, Proxy-Authorization and
 * Host are dropped when the redirect leaves the origin.
 */

/** Resolves a host name to every address it has (`dns.lookup` with `all`). */
export type HostResolver = (hostname: string) => Promise<LookupAddress[]>;

export const resolveAll: HostResolver = (hostname) =>
  new Promise((resolve, reject) =>
    dnsLookup(hostname, { all: true, verbatim: true }, (err, addresses) =>
      err ? reject(err) : resolve(addresses),
    ),
  );

export interface HttpCall {
  url: string;
  method: string;
  headers: Record<string, string>;
  body: string | null;
}

export interface HttpCallOptions {
  policy: HttpNetworkPolicy;
  /** Ends the whole call (every hop): the task's timeout, its request timeout, a cancel. */
  signal: AbortSignal;
  /** Redirects followed at most; one more is an error. */
  maxRedirects: number;
  /** @defaultValue resolveAll (the system resolver) */
  resolve?: HostResolver;
  /** Told of each redirect, as a line for the task log. */
  note?: (line: string) => void;
  /** Gets the final response's body (decoded when it is gzip, deflate or br encoded). */
  onBody?: (chunk: Buffer) => void;
}

export interface HttpCallResult {
  status: number;
  statusText: string;
  /** The URL of the final response (after redirects). */
  url: string;
  redirects: number;
}

/** The call could not be made or completed (not a refusal: see HttpTargetRefusedError). */
export class HttpCallError extends Error {
  override readonly name = 'HttpCallError';
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** Headers that describe the body: dropped with it when a redirect turns the request into a GET. */
const BODY_HEADERS = [
  'content-type',
  'content-length',
  'content-encoding',
  'content-language',
  'content-location',
];
/** Headers not sent to another origin than the one they were given for. */
const ORIGIN_HEADERS = ['authorization', 'cookie', 'proxy-authorization', 'host'];

export async function callHttp(call: HttpCall, opts: HttpCallOptions): Promise<HttpCallResult> {
  let url = parseUrl(call.url, null);
  let method = call.method.toUpperCase();
  let body = call.body;
  const headers = withDefaults(call.headers, body !== null);
  for (let redirects = 0; ; redirects++) {
    const context = redirects === 0 ? null : `redirect ${redirects} to ${shown(url)}`;
    const lookup = await checkedLookup(url, opts, context);
    const res = await send(url, method, headers, body, lookup, opts.signal);
    const status = res.statusCode ?? 0;
    const location = res.headers.location;
    if (!REDIRECTS.has(status) || location === undefined) {
      await readBody(res, method, opts.onBody);
      return { status, statusText: res.statusMessage ?? '', url: shown(url), redirects };
    }
    res.resume(); // a redirect's own body is not the task's output
    if (redirects >= opts.maxRedirects) {
      throw new HttpCallError(`more than ${opts.maxRedirects} redirects (the last one from ${shown(url)})`);
    }
    const next = parseUrl(location, url);
    opts.note?.(`HTTP ${[status, res.statusMessage].filter(Boolean).join(' ')}: redirect to ${shown(next)}`);
    if (((status === 301 || status === 302) && method === 'POST') || (status === 303 && method !== 'HEAD')) {
      method = 'GET';
      body = null;
      for (const h of BODY_HEADERS) deleteHeader(headers, h);
    }
    if (next.origin !== url.origin) for (const h of ORIGIN_HEADERS) deleteHeader(headers, h);
    url = next;
  }
}

function parseUrl(text: string, base: URL | null): URL {
  let url: URL;
  try {
    url = base === null ? new URL(text) : new URL(text, base);
  } catch {
    throw new HttpCallError(
      base === null
        ? `invalid URL ${JSON.stringify(text)}`
        : `invalid redirect location ${JSON.stringify(text)} from ${shown(base)}`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new HttpCallError(
      base === null
        ? `unsupported URL scheme ${url.protocol} (http: or https: only)`
        : `redirect from ${shown(base)} to ${shown(url)}: unsupported URL scheme ${url.protocol} (http: or https: only)`,
    );
  }
  return url;
}

/** The task's headers with what fetch added by default (the request was made with fetch before). */
function withDefaults(given: Record<string, string>, hasBody: boolean): Record<string, string> {
  const headers = { ...given };
  const has = (name: string) => Object.keys(headers).some((k) => k.toLowerCase() === name);
  if (!has('accept')) headers.accept = '*/*';
  if (!has('user-agent')) headers['user-agent'] = 'sched-worker';
  if (hasBody && !has('content-type')) headers['content-type'] = 'text/plain;charset=UTF-8';
  return headers;
}

function deleteHeader(headers: Record<string, string>, name: string): void {
  for (const k of Object.keys(headers)) if (k.toLowerCase() === name) delete headers[k];
}

/**
 * Checks where `url` would connect before anything is dialled: an IP literal itself, a host name
 * every address it resolves to. Returns the socket lookup that connects to exactly the checked
 * addresses (undefined for an IP literal: it is connected to as it is).
 * @throws HttpTargetRefusedError
 */
async function checkedLookup(
  url: URL,
  opts: HttpCallOptions,
  context: string | null,
): Promise<LookupFunction | undefined> {
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (isIP(host) !== 0) {
    const verdict = opts.policy.check(host);
    if (!verdict.allowed) throw new HttpTargetRefusedError(host, verdict, null, context);
    return undefined;
  }
  let addresses: LookupAddress[];
  try {
    addresses = await untilAborted((opts.resolve ?? resolveAll)(host), opts.signal);
  } catch (err) {
    if (opts.signal.aborted) throw err;
    throw new HttpCallError(`could not resolve ${host}: ${(err as Error).message}`);
  }
  if (addresses.length === 0) throw new HttpCallError(`could not resolve ${host}: no address`);
  for (const a of addresses) {
    const verdict = opts.policy.check(a.address);
    if (!verdict.allowed) throw new HttpTargetRefusedError(a.address, verdict, host, context);
  }
  return (_hostname, options, callback) => {
    const family = options.family === 4 || options.family === 6 ? options.family : 0;
    const usable = family === 0 ? addresses : addresses.filter((a) => a.family === family);
    const first = usable[0];
    if (first === undefined) {
      const err: NodeJS.ErrnoException = new Error(`${host} has no IPv${family} address`);
      err.code = 'ENOTFOUND';
      callback(err, '', 0);
    } else if (options.all) {
      callback(null, usable);
    } else {
      callback(null, first.address, first.family);
    }
  };
}

function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

function send(
  url: URL,
  method: string,
  headers: OutgoingHttpHeaders,
  body: string | null,
  lookup: LookupFunction | undefined,
  signal: AbortSignal,
): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = request(url, {
      method,
      headers,
      signal,
      // A fresh connection per request: a pooled one may have been made for another address.
      agent: false,
      ...(lookup === undefined ? {} : { lookup }),
    });
    req.once('response', resolve);
    req.once('error', reject);
    req.end(body ?? undefined);
  });
}

async function readBody(
  res: IncomingMessage,
  method: string,
  onBody: ((chunk: Buffer) => void) | undefined,
): Promise<void> {
  const status = res.statusCode ?? 0;
  const encoding = String(res.headers['content-encoding'] ?? '')
    .trim()
    .toLowerCase();
  const empty = method === 'HEAD' || status === 204 || status === 304;
  let stream: Readable = res;
  if (!empty && (encoding === 'gzip' || encoding === 'x-gzip')) stream = res.pipe(createGunzip());
  else if (!empty && encoding === 'deflate') stream = res.pipe(createInflate());
  else if (!empty && encoding === 'br') stream = res.pipe(createBrotliDecompress());
  if (stream !== res) res.once('error', (err) => stream.destroy(err));
  for await (const chunk of stream) onBody?.(chunk as Buffer);
}

/** A URL as logged and reported: without the user name and password it may carry. */
export function shown(url: URL): string {
  if (!url.username && !url.password) return url.href;
  const copy = new URL(url.href);
  copy.username = '';
  copy.password = '';
  return copy.href;
}
