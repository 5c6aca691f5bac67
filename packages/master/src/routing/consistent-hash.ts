import { createHash } from 'node:crypto';
import type { RouteContext, RoutingStrategy } from './routing-strategy.js';
import type { WorkerView } from './worker-view.js';

/**
 * `consistent-hash`: a hash ring with virtual nodes (xxl-job uses 100 per executor and MD5; so do
 * we). A key goes to the first virtual node at or after its hash, clockwise; the fallbacks are the
 * next distinct workers around the ring, so when the chosen worker refuses, the key goes where it
 * would go if that worker were gone.
 *
 * Ring positions are derived from the worker's **address**, not its incarnation key: a worker
 * restarted on the same host:port gets its keys back. When a worker leaves, only the keys that
 * were on it move; every other key stays where it was.
 *
 * The ring is rebuilt only when the set of addresses changes.
 */
export class ConsistentHashStrategy implements RoutingStrategy {
  readonly name = 'consistent-hash' as const;
  private ring: { signature: string; points: Uint32Array; owners: string[] } | undefined;

  constructor(private readonly virtualNodes = 100) {
    if (!Number.isInteger(virtualNodes) || virtualNodes < 1) {
      throw new RangeError(`virtualNodes must be a positive integer, got ${virtualNodes}`);
    }
  }

  order(ctx: RouteContext): WorkerView[] {
    const byAddress = new Map<string, WorkerView>();
    for (const c of ctx.candidates) if (!byAddress.has(c.address)) byAddress.set(c.address, c);
    const ring = this.ringFor([...byAddress.keys()].sort());

    const h = hash32(ctx.hashKey);
    let i = lowerBound(ring.points, h);
    const out: WorkerView[] = [];
    const seen = new Set<string>();
    for (let step = 0; step < ring.points.length && seen.size < byAddress.size; step++, i++) {
      const owner = ring.owners[i % ring.points.length] as string;
      if (seen.has(owner)) continue;
      seen.add(owner);
      out.push(byAddress.get(owner) as WorkerView);
    }
    // Several incarnations on one address (an old one not yet expired): keep them as fallbacks.
    for (const c of ctx.candidates) if (!out.includes(c)) out.push(c);
    return out;
  }

  private ringFor(addresses: string[]): { points: Uint32Array; owners: string[] } {
    const signature = addresses.join('\n');
    if (this.ring?.signature === signature) return this.ring;
    const entries: { point: number; owner: string }[] = [];
    for (const address of addresses) {
      for (let v = 0; v < this.virtualNodes; v++) {
        entries.push({ point: hash32(`SHARD-${address}-NODE-${v}`), owner: address });
      }
    }
    entries.sort((a, b) => a.point - b.point || (a.owner < b.owner ? -1 : a.owner > b.owner ? 1 : 0));
    this.ring = {
      signature,
      points: Uint32Array.from(entries.map((e) => e.point)),
      owners: entries.map((e) => e.owner),
    };
    return this.ring;
  }
}

/** First 32 bits of the MD5 of `text`, unsigned. */
export function hash32(text: string): number {
  return createHash('md5').update(text).digest().readUInt32BE(0);
}

function lowerBound(points: Uint32Array, value: number): number {
  let lo = 0;
  let hi = points.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((points[mid] as number) < value) lo = mid + 1;
    else hi = mid;
  }
  return lo === points.length ? 0 : lo;
}
