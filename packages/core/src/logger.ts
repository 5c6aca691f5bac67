import { type DestinationStream, type Logger, pino } from 'pino';
import pretty from 'pino-pretty';

export type { Logger } from 'pino';

/**
 * Logging: pino, one child logger per component (`logger.child({ component: 'election' })`)
 * with the incarnation key bound by the daemon. JSON lines in production (machines read
 * them); human-readable lines when stdout is a terminal or `pretty: true`. Secrets are
 * redacted at the logger, so a careless `log.info({ config })` cannot leak them.
 */

export interface CreateLoggerOptions {
  /** pino level: fatal, error, warn, info, debug, trace, silent. @defaultValue `'info'` */
  level?: string;
  /** Bound as `name` on every line. */
  name?: string;
  /** Human-readable output. @defaultValue whether stdout is a TTY */
  pretty?: boolean;
  /** Fields bound on every line (e.g. `{ node: '10.0.0.5:5678_1718000000000' }`). */
  bindings?: Record<string, unknown>;
  /** Where lines go. @defaultValue stdout. Tests pass a stream to capture output. */
  destination?: DestinationStream | NodeJS.WritableStream;
}

const REDACTED = '[Redacted]';

// Key names whose values are secrets wherever they appear, up to four levels deep
// (pino's redaction supports `*` for one level only, so the depths are spelled out).
const SECRET_KEYS = ['secret', 'password', 'auth', 'token'];
const URL_KEYS = ['url', 'connectionString'];

function atDepths(keys: readonly string[]): string[] {
  return keys.flatMap((k) => [k, `*.${k}`, `*.*.${k}`, `*.*.*.${k}`]);
}

/** Replaces the password in `scheme://user:password@host/...` with `***`; other strings unchanged. */
export function redactUrl(value: string): string {
  return value.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*):[^@/\s]*@/i, '$1:***@');
}

/** The value a redacted field gets: URLs keep everything but the password, anything else is replaced. */
function censor(value: unknown, path: string[]): unknown {
  const key = path[path.length - 1] ?? '';
  if (URL_KEYS.includes(key)) return typeof value === 'string' ? redactUrl(value) : value;
  return value === undefined ? value : REDACTED;
}

export function createLogger(opts: CreateLoggerOptions = {}): Logger {
  const usePretty = opts.pretty ?? process.stdout.isTTY === true;
  const destination = opts.destination ?? process.stdout;
  const stream = usePretty
    ? pretty({
        destination,
        colorize: opts.destination === undefined && process.stdout.isTTY === true,
        translateTime: 'SYS:HH:MM:ss.l',
        ignore: 'pid,hostname',
        sync: true,
      })
    : destination;
  const logger = pino(
    {
      level: opts.level ?? 'info',
      name: opts.name,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: [...atDepths(SECRET_KEYS), ...atDepths(URL_KEYS)], censor },
    },
    stream as DestinationStream,
  );
  return opts.bindings ? logger.child(opts.bindings) : logger;
}

/**
 * A deep copy of a configuration object that is safe to log or print: secret fields
 * (`secret`, `password`, `auth`, `token`) become `[Redacted]` and passwords inside URLs
 * (`postgres://sched:pw@host/db`) become `***`.
 */
export function redactConfig<T>(config: T): T {
  return redactValue(config, undefined) as T;
}

function redactValue(value: unknown, key: string | undefined): unknown {
  if (key !== undefined && SECRET_KEYS.includes(key) && value !== undefined && value !== null)
    return REDACTED;
  if (typeof value === 'string') return redactUrl(value);
  if (Array.isArray(value)) return value.map((v) => redactValue(v, undefined));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactValue(v, k)]));
  }
  return value;
}
