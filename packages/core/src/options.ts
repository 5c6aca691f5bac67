/**
 * A component's options with its defaults filled in, resolved once in its constructor:
 *
 * ```ts
 * export const DEFAULT_X_OPTIONS = { batchSize: 500 } as const satisfies Required<Pick<XOptions, 'batchSize'>>;
 * this.opts = withDefaults(opts, DEFAULT_X_OPTIONS); // this.opts.batchSize: number
 * ```
 *
 * Every field of `given` that is not `undefined` wins; unlike a plain spread, an option passed as
 * `undefined` (`{ retryMs: other.retryMs }`) keeps its default instead of erasing it.
 */
export function withDefaults<O extends object, D extends Partial<O>>(
  given: O,
  defaults: D,
): WithDefaults<O, D> {
  const resolved: Record<string, unknown> = { ...defaults };
  for (const [name, value] of Object.entries(given)) if (value !== undefined) resolved[name] = value;
  return resolved as WithDefaults<O, D>;
}

/** `O` with the options that `D` has a default for no longer optional. */
export type WithDefaults<O, D> = O & { [K in keyof D & keyof O]-?: Exclude<O[K], undefined> };
