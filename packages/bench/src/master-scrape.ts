// Reads a histogram from a master's Prometheus endpoint (`GET /metrics`, no secret needed), so a
// benchmark can report what the daemon itself measured over a window (the difference of two
// scrapes). Quantiles are the upper bound of the bucket that holds them.

export type Buckets = Map<number, number>;

export async function scrapeBuckets(address: string, name: string): Promise<Buckets> {
  const buckets: Buckets = new Map();
  try {
    const res = await fetch(`http://${address}/metrics`, { signal: AbortSignal.timeout(5_000) });
    if (!res.ok) return buckets;
    for (const line of (await res.text()).split('\n')) {
      if (!line.startsWith(`${name}_bucket{`)) continue;
      const le = /le="([^"]+)"/.exec(line)?.[1];
      const value = Number(line.slice(line.lastIndexOf(' ') + 1));
      if (le === undefined || !Number.isFinite(value)) continue;
      const bound = le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le);
      buckets.set(bound, (buckets.get(bound) ?? 0) + value);
    }
  } catch {
    // No figure rather than no benchmark.
  }
  return buckets;
}

export interface WindowQuantiles {
  count: number;
  /** Upper bound (ms) of the bucket holding the median / the 99th percentile; null if empty. */
  p50LeMs: number | null;
  p99LeMs: number | null;
}

/** Quantiles of what was observed between two scrapes. */
export function windowQuantiles(before: Buckets, after: Buckets): WindowQuantiles {
  const sorted = [...after.entries()]
    .map(([le, c]) => [le, c - (before.get(le) ?? 0)] as const)
    .sort((a, b) => a[0] - b[0]);
  const count = sorted.at(-1)?.[1] ?? 0;
  const at = (q: number) => {
    if (count === 0) return null;
    const hit = sorted.find(([, c]) => c >= q * count);
    return hit ? hit[0] * 1000 : null;
  };
  return { count, p50LeMs: at(0.5), p99LeMs: at(0.99) };
}
