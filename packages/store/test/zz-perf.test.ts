import { applyDefinitions, compileDefinitions, createPool, fireSchedules, migrate } from '@sched/store';
import pg from 'pg';
import { test } from 'vitest';

test('perf', async () => {
  const admin = new pg.Client({ connectionString: 'postgres://postgres@127.0.0.1:54444/postgres' });
  await admin.connect();
  await admin.query('DROP DATABASE IF EXISTS perf');
  await admin.query('CREATE DATABASE perf');
  await admin.end();
  const url = 'postgres://postgres@127.0.0.1:54444/perf';
  await migrate(url);
  const pool = createPool(url, { max: 8 });
  await applyDefinitions(
    pool,
    compileDefinitions(
      Array.from({ length: 1000 }, (_, i) => ({
        label: `x${i}`,
        value: { name: `p-${i}`, schedule: { cron: '* * * * * *' }, tasks: [{ name: 'a', type: 'noop' }] },
      })),
    ),
  );
  const { rows } = await pool.query(
    'SELECT id, revision, (extract(epoch from next_fire_time)*1000)::bigint AS n FROM schedules ORDER BY id',
  );
  let cur = rows.map((r) => ({ id: r.id, rev: r.revision, n: r.n }));
  for (let round = 0; round < 8; round++) {
    const t0 = performance.now();
    const batches = [];
    for (let i = 0; i < cur.length; i += 250) batches.push(cur.slice(i, i + 250));
    const durs: number[] = [];
    await Promise.all(
      batches.map(async (b) => {
        const s = performance.now();
        await fireSchedules(
          pool,
          'me',
          'allow',
          b.map((x) => ({ scheduleId: x.id, expectedMs: x.n, revision: x.rev, nextMs: x.n + 1000 })),
          b.map((x) => ({ scheduleId: x.id, fireTimeMs: x.n, trigger: 'schedule' as const })),
        );
        durs.push(performance.now() - s);
      }),
    );
    console.log('round', round, 'total', Math.round(performance.now() - t0), 'each', durs.map(Math.round));
    cur = cur.map((x) => ({ ...x, n: x.n + 1000 }));
  }
  await pool.end();
}, 120000);
