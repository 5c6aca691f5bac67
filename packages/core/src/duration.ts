import { z } from 'zod';
import { SchedError } from './errors.js';

/**
 * Durations as users write them (`250ms`, `10s`, `1.5s`, `5m`, `1h`, `7d`, `1m30s`) or as a
 * plain number of milliseconds, compiled once to integer milliseconds. Internally sched only
 * ever handles `…Ms` numbers.
 */

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
type Unit = keyof typeof UNIT_MS;

/** What a duration may look like, as error messages state it. */
export const ACCEPTED_DURATIONS = 'a number of milliseconds or a string like 500ms, 10s, 5m, 1h, 7d';
// One or more `<number><unit>` parts, e.g. `1h30m`, `1.5s`. `ms` is listed before `m` so it wins.
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/y;
const WHOLE = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$/;

function invalid(input: unknown, path: string | undefined, why?: string): SchedError {
  const shown =
    typeof input === 'string'
      ? JSON.stringify(input)
      : input !== null && typeof input === 'object'
        ? typeof input
        : String(input);
  const detail = why ? ` (${why})` : '';
  const prefix = path ? `${path}: ` : '';
  return new SchedError(
    'DURATION_INVALID',
    `${prefix}invalid duration ${shown}${detail}; accepted: ${ACCEPTED_DURATIONS}`,
  );
}

/**
 * Parses a duration to integer milliseconds. Numbers (and digit-only strings, as environment
 * variables arrive) are milliseconds. Fractions are allowed on any unit (`1.5s`) as long as
 * the result is a whole number of milliseconds.
 * @throws SchedError with code `DURATION_INVALID`, naming `path` when given.
 */
export function parseDuration(input: string | number, path?: string): number {
  if (typeof input === 'number') {
    if (!Number.isSafeInteger(input) || input < 0) {
      throw invalid(input, path, 'milliseconds must be a non-negative integer');
    }
    return input;
  }
  if (typeof input !== 'string') throw invalid(input, path);
  const text = input.trim();
  if (/^\d+$/.test(text)) return parseDuration(Number(text), path);
  if (!WHOLE.test(text)) throw invalid(input, path);

  let total = 0;
  PART.lastIndex = 0;
  for (let m = PART.exec(text); m !== null; m = PART.exec(text)) {
    total += Number(m[1]) * UNIT_MS[m[2] as Unit];
  }
  // Floating point: 1.1s is 1100.0000000000002 ms; accept what is a whole ms up to rounding noise.
  const rounded = Math.round(total);
  if (Math.abs(total - rounded) > 1e-6) throw invalid(input, path, 'not a whole number of milliseconds');
  if (!Number.isSafeInteger(rounded)) throw invalid(input, path, 'too large');
  return rounded;
}

/**
 * Formats milliseconds in the same notation `parseDuration` reads, largest units first:
 * 90000 → `1m30s`, 1500 → `1s500ms`, 0 → `0ms`. `parseDuration(formatDuration(x)) === x`.
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  if (ms < 0) return `-${formatDuration(-ms)}`;
  let rest = Math.round(ms);
  if (rest === 0) return '0ms';
  let out = '';
  for (const unit of ['d', 'h', 'm', 's', 'ms'] as const) {
    const size = UNIT_MS[unit];
    const n = Math.floor(rest / size);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * size;
    }
  }
  return out;
}

/** zod schema: a duration string or a number of ms in, integer milliseconds out; bad input gets parseDuration's message. */
export const durationSchema = z.unknown().transform((value, ctx): number => {
  try {
    if (typeof value !== 'string' && typeof value !== 'number') throw invalid(value, undefined);
    return parseDuration(value);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: err instanceof Error ? err.message : String(err), input: value });
    return z.NEVER;
  }
});
