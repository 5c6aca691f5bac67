/**
 * Per-scope state for stateful strategies (counters, weights, usage), bounded: the scope that was
 * used least recently is dropped once `maxScopes` is exceeded, so a master that has routed a
 * million distinct tasks does not keep a million counters. Losing a scope's memory only costs
 * evenness for that scope, never correctness.
 */
export class ScopedMemory<T> {
  private readonly entries = new Map<string, T>();

  constructor(
    private readonly create: () => T,
    private readonly maxScopes = 10_000,
  ) {}

  get(scope: string): T {
    let value = this.entries.get(scope);
    if (value === undefined) {
      value = this.create();
    } else {
      // Re-insert so Map iteration order is least-recently-used first.
      this.entries.delete(scope);
    }
    this.entries.set(scope, value);
    while (this.entries.size > this.maxScopes) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
    return value;
  }

  get size(): number {
    return this.entries.size;
  }
}
