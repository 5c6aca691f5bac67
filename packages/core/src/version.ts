/** sched's version, published in heartbeats and printed by `--version`. */
export const SCHED_VERSION = '0.1.0';
