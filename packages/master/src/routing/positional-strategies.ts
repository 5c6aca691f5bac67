import { type RouteContext, type RoutingStrategy, rotate } from './routing-strategy.js';
import { ScopedMemory } from './scoped-memory.js';
import type { WorkerView } from './worker-view.js';

/** `first`: the first worker in the stable order; the rest in order as fallbacks. */
export const firstStrategy: RoutingStrategy = {
  name: 'first',
  order: (ctx) => [...ctx.candidates],
};

/** `last`: the last worker in the stable order; the rest backwards as fallbacks. */
export const lastStrategy: RoutingStrategy = {
  name: 'last',
  order: (ctx) => [...ctx.candidates].reverse(),
};

/** `random`: a uniformly random order (Fisher–Yates over the injected random source). */
export const randomStrategy: RoutingStrategy = {
  name: 'random',
  order: (ctx) => shuffle(ctx.candidates, ctx.random),
};

function shuffle<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/**
 * `round-robin`: a per-scope counter walks the stable order. The counter starts at a random
 * position (as xxl-job does) so that several masters, or a restarted one, do not all begin on the
 * same worker.
 */
export class RoundRobinStrategy implements RoutingStrategy {
  readonly name = 'round-robin' as const;
  private readonly counters = new ScopedMemory<{ next: number | undefined }>(() => ({ next: undefined }));

  order(ctx: RouteContext): WorkerView[] {
    const counter = this.counters.get(ctx.scope);
    const n = ctx.candidates.length;
    const current = counter.next ?? Math.floor(ctx.random() * n);
    counter.next = (current + 1) % 1_000_000_000;
    return rotate(ctx.candidates, current % n);
  }
}
