import { configWarnings, createLogger, type Logger, type SchedConfig } from '@sched/core';

/** A running daemon, as the start commands see it. */
export interface Daemon {
  /** Graceful stop (drain, deregister). */
  stop(): Promise<void>;
  /** Resolves with an exit code when the daemon ends on its own (e.g. a zombie that found its failover record). */
  readonly ended?: Promise<number>;
}

export function daemonLogger(name: string, config: SchedConfig): Logger {
  const logger = createLogger({ name, level: config.log.level });
  for (const w of configWarnings(config)) logger.warn(`configuration: ${w.path}: ${w.message}`);
  return logger;
}

/**
 * Runs a daemon until SIGTERM/SIGINT (graceful: drain, deregister, exit 0) or until it ends by
 * itself. A second signal exits at once.
 */
export async function runUntilSignalled(name: string, daemon: Daemon, logger: Logger): Promise<number> {
  let signalled = false;
  const stopped = new Promise<number>((resolve) => {
    const onSignal = (sig: NodeJS.Signals) => {
      if (signalled) {
        logger.warn({ signal: sig }, `${name}: second signal, exiting now`);
        process.exit(1);
      }
      signalled = true;
      logger.info({ signal: sig }, `${name}: stopping gracefully`);
      daemon.stop().then(
        () => resolve(0),
        (err) => {
          logger.error({ err }, `${name}: graceful stop failed`);
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  return daemon.ended ? Promise.race([stopped, daemon.ended]) : stopped;
}
