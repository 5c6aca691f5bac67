import { CronSchedule, checkCron } from '@sched/store';
import { describe, expect, it } from 'vitest';

// Golden table: expected fire times worked out by hand from the calendar and the zone rules, not
// copied from the evaluator. 2025 facts used: Jan 1 is a Wednesday. America/New_York: clocks go
// 02:00 EST → 03:00 EDT on Sun 2025-03-09 (07:00Z) and 02:00 EDT → 01:00 EST on Sun 2025-11-02
// (06:00Z). Europe/London: 01:00 GMT → 02:00 BST on Sun 2025-03-30 (01:00Z) and 02:00 BST →
// 01:00 GMT on Sun 2025-10-26 (01:00Z). DST rule under test (docs/scheduling.md): an expression
// with no `*` or `/` in its second/minute/hour fields is "fixed-time" — a time in the spring gap
// fires at the first instant after the gap, a repeated time fires once (first occurrence); any
// other expression follows elapsed time — gap times do not fire, repeated times fire twice.
//
// Each row: [expression, time zone, start instant (exclusive), expected next fire times; a final
// null means "and then no more"], optional bounds.

type Row = [string, string, string, (string | null)[], { start?: string; end?: string }?];

const NY = 'America/New_York';
const LON = 'Europe/London';

const GOLDEN: Row[] = [
  // Quartz features, UTC
  [
    '*/20 * * * * *',
    'UTC',
    '2025-01-01T00:00:00Z',
    ['2025-01-01T00:00:20Z', '2025-01-01T00:00:40Z', '2025-01-01T00:01:00Z'],
  ],
  [
    '0 0/30 9-18 ? * MON-FRI',
    'UTC',
    '2025-01-03T18:00:00Z',
    ['2025-01-03T18:30:00Z', '2025-01-06T09:00:00Z', '2025-01-06T09:30:00Z'],
  ],
  [
    '0 0/45 * * * ?',
    'UTC',
    '2025-01-01T00:00:00Z',
    ['2025-01-01T00:45:00Z', '2025-01-01T01:00:00Z', '2025-01-01T01:45:00Z'],
  ],
  ['0 0 12 ? * MON *', 'UTC', '2025-01-01T00:00:00Z', ['2025-01-06T12:00:00Z', '2025-01-13T12:00:00Z']],
  ['0 0 12 ? * 2', 'UTC', '2025-01-01T00:00:00Z', ['2025-01-06T12:00:00Z', '2025-01-13T12:00:00Z']], // Quartz 2 = Monday
  ['0 0 0 ? * 1', 'UTC', '2025-01-01T00:00:00Z', ['2025-01-05T00:00:00Z', '2025-01-12T00:00:00Z']], // Quartz 1 = Sunday
  ['0 0 0 ? * L', 'UTC', '2025-01-01T00:00:00Z', ['2025-01-04T00:00:00Z', '2025-01-11T00:00:00Z']], // L alone = Saturday
  [
    '0 0 9 ? 1,7 2',
    'UTC',
    '2025-01-25T00:00:00Z',
    ['2025-01-27T09:00:00Z', '2025-07-07T09:00:00Z', '2025-07-14T09:00:00Z'],
  ],
  // L, W, LW, #
  [
    '0 0 0 L * ?',
    'UTC',
    '2025-01-01T00:00:00Z',
    ['2025-01-31T00:00:00Z', '2025-02-28T00:00:00Z', '2025-03-31T00:00:00Z'],
  ],
  ['0 0 0 L * ?', 'UTC', '2024-02-01T00:00:00Z', ['2024-02-29T00:00:00Z', '2024-03-31T00:00:00Z']], // leap year
  [
    '0 0 0 15W * ?',
    'UTC',
    '2025-01-01T00:00:00Z',
    ['2025-01-15T00:00:00Z', '2025-02-14T00:00:00Z', '2025-03-14T00:00:00Z'],
  ],
  [
    '0 0 0 1W * ?',
    'UTC',
    '2025-01-02T00:00:00Z',
    ['2025-02-03T00:00:00Z', '2025-03-03T00:00:00Z', '2025-04-01T00:00:00Z'],
  ],
  [
    '0 0 0 LW * ?',
    'UTC',
    '2025-04-01T00:00:00Z',
    ['2025-04-30T00:00:00Z', '2025-05-30T00:00:00Z', '2025-06-30T00:00:00Z'],
  ],
  [
    '0 0 0 ? * 6L',
    'UTC',
    '2025-01-01T00:00:00Z',
    ['2025-01-31T00:00:00Z', '2025-02-28T00:00:00Z', '2025-03-28T00:00:00Z'],
  ],
  [
    '0 0 0 ? * 6#3',
    'UTC',
    '2025-01-01T00:00:00Z',
    ['2025-01-17T00:00:00Z', '2025-02-21T00:00:00Z', '2025-03-21T00:00:00Z'],
  ],
  [
    '0 0 0 ? * 2#1',
    'UTC',
    '2025-01-01T00:00:00Z',
    ['2025-01-06T00:00:00Z', '2025-02-03T00:00:00Z', '2025-03-03T00:00:00Z'],
  ],
  [
    '0 0 0 ? * 2#5',
    'UTC',
    '2025-01-01T00:00:00Z',
    ['2025-03-31T00:00:00Z', '2025-06-30T00:00:00Z', '2025-09-29T00:00:00Z'],
  ],
  // Year field
  ['0 0 0 1 1 ? 2027', 'UTC', '2025-01-01T00:00:00Z', ['2027-01-01T00:00:00Z', null]],
  [
    '0 0 0 1 1 ? 2026-2027',
    'UTC',
    '2025-01-01T00:00:00Z',
    ['2026-01-01T00:00:00Z', '2027-01-01T00:00:00Z', null],
  ],
  ['0 30 10 1 1 ? 2025/2', 'UTC', '2025-01-01T11:00:00Z', ['2027-01-01T10:30:00Z', '2029-01-01T10:30:00Z']],
  // Classic five fields (cron day-of-week numbering, OR of day fields)
  ['5 4 * * *', 'UTC', '2025-01-01T00:00:00Z', ['2025-01-01T04:05:00Z', '2025-01-02T04:05:00Z']],
  ['0 12 * * 2', 'UTC', '2025-01-01T00:00:00Z', ['2025-01-07T12:00:00Z', '2025-01-14T12:00:00Z']], // cron 2 = Tuesday
  ['0 0 * * 0', 'UTC', '2025-01-01T00:00:00Z', ['2025-01-05T00:00:00Z', '2025-01-12T00:00:00Z']],
  ['0 0 * * 7', 'UTC', '2025-01-01T00:00:00Z', ['2025-01-05T00:00:00Z', '2025-01-12T00:00:00Z']],
  [
    '0 0 13 * 5',
    'UTC',
    '2025-01-01T00:00:00Z',
    ['2025-01-03T00:00:00Z', '2025-01-10T00:00:00Z', '2025-01-13T00:00:00Z', '2025-01-17T00:00:00Z'],
  ],
  ['0 0 1,15 * *', 'UTC', '2025-01-01T00:00:00Z', ['2025-01-15T00:00:00Z', '2025-02-01T00:00:00Z']],
  ['*/15 * * * *', 'UTC', '2025-01-01T00:07:00Z', ['2025-01-01T00:15:00Z', '2025-01-01T00:30:00Z']],
  ['@daily', 'UTC', '2025-01-01T00:00:00Z', ['2025-01-02T00:00:00Z', '2025-01-03T00:00:00Z']],
  ['@hourly', 'UTC', '2025-01-01T00:30:00Z', ['2025-01-01T01:00:00Z', '2025-01-01T02:00:00Z']],
  // Time zones without a transition
  ['0 0 9 * * ?', 'Asia/Shanghai', '2025-01-01T00:00:00Z', ['2025-01-01T01:00:00Z', '2025-01-02T01:00:00Z']],
  ['0 0 9 * * ?', 'Asia/Kolkata', '2025-01-01T00:00:00Z', ['2025-01-01T03:30:00Z', '2025-01-02T03:30:00Z']],
  [
    '0 0 0 * * ?',
    'Australia/Sydney',
    '2025-01-01T00:00:00Z',
    ['2025-01-01T13:00:00Z', '2025-01-02T13:00:00Z'],
  ],
  [
    '0 0 12 L * ?',
    'America/Los_Angeles',
    '2025-01-01T00:00:00Z',
    ['2025-01-31T20:00:00Z', '2025-02-28T20:00:00Z'],
  ],
  // America/New_York, spring forward (02:00-03:00 does not exist on 2025-03-09)
  [
    '0 30 2 * * ?',
    NY,
    '2025-03-08T12:00:00Z',
    ['2025-03-09T07:00:00Z', '2025-03-10T06:30:00Z', '2025-03-11T06:30:00Z'],
  ],
  ['30 2 * * *', NY, '2025-03-08T12:00:00Z', ['2025-03-09T07:00:00Z', '2025-03-10T06:30:00Z']],
  ['0 0 2 ? * SUN', NY, '2025-03-02T12:00:00Z', ['2025-03-09T07:00:00Z', '2025-03-16T06:00:00Z']],
  [
    '0 0,30 2 * * ?',
    NY,
    '2025-03-09T00:00:00Z',
    ['2025-03-09T07:00:00Z', '2025-03-10T06:00:00Z', '2025-03-10T06:30:00Z'],
  ],
  [
    '0 0 * * * ?',
    NY,
    '2025-03-09T05:00:00Z',
    ['2025-03-09T06:00:00Z', '2025-03-09T07:00:00Z', '2025-03-09T08:00:00Z'],
  ],
  ['0 */15 2 * * ?', NY, '2025-03-09T05:00:00Z', ['2025-03-10T06:00:00Z', '2025-03-10T06:15:00Z']],
  // America/New_York, fall back (01:00-02:00 happens twice on 2025-11-02)
  ['0 30 1 * * ?', NY, '2025-11-01T12:00:00Z', ['2025-11-02T05:30:00Z', '2025-11-03T06:30:00Z']],
  [
    '0 0,30 1 * * ?',
    NY,
    '2025-11-02T04:00:00Z',
    ['2025-11-02T05:00:00Z', '2025-11-02T05:30:00Z', '2025-11-03T06:00:00Z'],
  ],
  [
    '0 0 * * * ?',
    NY,
    '2025-11-02T03:00:00Z',
    ['2025-11-02T04:00:00Z', '2025-11-02T05:00:00Z', '2025-11-02T06:00:00Z', '2025-11-02T07:00:00Z'],
  ],
  [
    '0 0/30 1 * * ?',
    NY,
    '2025-11-02T04:00:00Z',
    [
      '2025-11-02T05:00:00Z',
      '2025-11-02T05:30:00Z',
      '2025-11-02T06:00:00Z',
      '2025-11-02T06:30:00Z',
      '2025-11-03T06:00:00Z',
    ],
  ],
  // Europe/London
  ['0 30 1 * * ?', LON, '2025-03-29T12:00:00Z', ['2025-03-30T01:00:00Z', '2025-03-31T00:30:00Z']],
  [
    '0 */30 * * * ?',
    LON,
    '2025-03-30T00:15:00Z',
    ['2025-03-30T00:30:00Z', '2025-03-30T01:00:00Z', '2025-03-30T01:30:00Z'],
  ],
  ['0 0 0 * * ?', LON, '2025-03-29T12:00:00Z', ['2025-03-30T00:00:00Z', '2025-03-30T23:00:00Z']],
  ['0 30 1 * * ?', LON, '2025-10-25T12:00:00Z', ['2025-10-26T00:30:00Z', '2025-10-27T01:30:00Z']],
  ['0 0 1 * * ?', LON, '2025-10-25T12:00:00Z', ['2025-10-26T00:00:00Z', '2025-10-27T01:00:00Z']],
  [
    '0 */30 * * * ?',
    LON,
    '2025-10-25T23:45:00Z',
    [
      '2025-10-26T00:00:00Z',
      '2025-10-26T00:30:00Z',
      '2025-10-26T01:00:00Z',
      '2025-10-26T01:30:00Z',
      '2025-10-26T02:00:00Z',
    ],
  ],
  // Start (inclusive) and end (exclusive) bounds
  [
    '0 0 * * * ?',
    'UTC',
    '2025-01-01T00:00:00Z',
    ['2025-06-01T11:00:00Z', '2025-06-01T12:00:00Z'],
    { start: '2025-06-01T10:30:00Z' },
  ],
  ['0 0 * * * ?', 'UTC', '2025-01-01T00:00:00Z', ['2025-06-01T10:00:00Z'], { start: '2025-06-01T10:00:00Z' }],
  [
    '0 0 * * * ?',
    'UTC',
    '2025-01-01T00:00:00Z',
    ['2025-01-01T01:00:00Z', '2025-01-01T02:00:00Z', null],
    { end: '2025-01-01T03:00:00Z' },
  ],
];

describe('cron golden table', () => {
  it('has at least 40 rows', () => {
    expect(GOLDEN.length).toBeGreaterThanOrEqual(40);
  });

  it.each(GOLDEN)('%s in %s after %s', (expression, timezone, from, expected, bounds) => {
    const schedule = new CronSchedule(expression, {
      timezone,
      startAt: bounds?.start ? Date.parse(bounds.start) : undefined,
      endAt: bounds?.end ? Date.parse(bounds.end) : undefined,
    });
    const got: (string | null)[] = [];
    let t: number | null = Date.parse(from);
    for (let i = 0; i < expected.length; i++) {
      t = schedule.next(t as number);
      got.push(t === null ? null : new Date(t).toISOString().replace('.000Z', 'Z'));
      if (t === null) break;
    }
    expect(got).toEqual(expected);
  });

  it('next() is strictly after a time inside a second', () => {
    const s = new CronSchedule('* * * * * *');
    expect(s.next(Date.parse('2025-01-01T12:00:00.500Z'))).toBe(Date.parse('2025-01-01T12:00:01Z'));
    expect(s.next(Date.parse('2025-01-01T12:00:00Z'))).toBe(Date.parse('2025-01-01T12:00:01Z'));
  });

  it.each([
    ['0 0 12 15 * MON', 'one of them must be "?"'],
    ['0 0 0 L-2 * ?', 'L with an offset is not supported'],
    ['1 2 3', 'it has 3 fields'],
    ['0 0 0 30 2 ?', 'never matches'],
    ['@reboot', 'unknown nickname'],
    ['0 60 * * * ?', 'minute'],
  ])('rejects %s', (expression, fragment) => {
    expect(checkCron(expression)).toContain(fragment);
  });

  it('rejects an unknown time zone', () => {
    expect(checkCron('0 0 * * *', 'Atlantis/Capital')).toContain('unknown time zone "Atlantis/Capital"');
  });
});

describe('latest fire times (catch-up after an outage)', () => {
  it('returns the most recent ones, ascending, within the range', () => {
    const s = new CronSchedule('* * * * * *');
    const from = Date.parse('2025-01-01T12:00:00Z');
    expect(s.latest(from, from + 10_000, 3)).toEqual([from + 8_000, from + 9_000, from + 10_000]);
    expect(s.latest(from, from + 1_500, 5)).toEqual([from, from + 1_000]);
  });
  it('is DST-consistent with next()', () => {
    const s = new CronSchedule('0 30 2 * * ?', { timezone: 'America/New_York' });
    expect(s.latest(Date.parse('2025-03-08T00:00:00Z'), Date.parse('2025-03-10T12:00:00Z'), 5)).toEqual([
      Date.parse('2025-03-08T07:30:00Z'),
      Date.parse('2025-03-09T07:00:00Z'),
      Date.parse('2025-03-10T06:30:00Z'),
    ]);
  });
});
