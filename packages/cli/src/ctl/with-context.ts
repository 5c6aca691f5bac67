import type { Command } from 'commander';
import { type CtlOptions, loadCtlConfig } from './ctl-config.js';
import { CtlContext } from './ctl-context.js';

/** Runs a command body with a context built from the global options, closing it afterwards. */
export async function withContext<T>(
  cmd: Command,
  body: (ctx: CtlContext, opts: Record<string, unknown>) => Promise<T>,
): Promise<T> {
  const opts = cmd.optsWithGlobals() as CtlOptions;
  const ctx = new CtlContext(loadCtlConfig(opts));
  try {
    return await body(ctx, opts);
  } finally {
    await ctx.close();
  }
}
