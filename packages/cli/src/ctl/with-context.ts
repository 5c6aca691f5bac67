import { SchedError } from '@sched/core';
import { isZkError } from '@sched/registry';
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
  } catch (err) {
    // ZooKeeper refused: say why and what to set, not just NO_AUTH.
    if (isZkError(err, 'NO_AUTH')) {
      const has = ctx.cfg.config.zk.auth !== undefined;
      throw new SchedError(
        'ZK_NO_AUTH',
        `${err.message}: ZooKeeper refused access; the sched tree is protected by digest credentials ` +
          (has
            ? 'other than the SCHED_ZK_AUTH given here. Use the credentials the daemons use'
            : "and none were given. Set SCHED_ZK_AUTH to the cluster's credentials (the daemons' ones)"),
        { cause: err },
      );
    }
    throw err;
  } finally {
    await ctx.close();
  }
}
