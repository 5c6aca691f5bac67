import os from 'node:os';

/**
 * Host load figures for heartbeats (docs/design.md#znodes): CPU busy fraction since the previous
 * sample, memory in use, and the 1-minute load average per core. Cheap enough to call on every
 * heartbeat; the first CPU sample measures since boot.
 */
export interface HostLoad {
  /** 0..1 */
  cpu: number;
  /** 0..1 */
  memory: number;
  /** 1-minute load average divided by the number of cores. */
  load: number;
}

export class HostLoadSampler {
  private last = cpuTimes();

  sample(): HostLoad {
    const now = cpuTimes();
    const total = now.total - this.last.total;
    const idle = now.idle - this.last.idle;
    this.last = now;
    const cores = Math.max(1, os.cpus().length);
    return {
      cpu: total > 0 ? round(Math.min(1, Math.max(0, 1 - idle / total))) : 0,
      memory: round(1 - os.freemem() / os.totalmem()),
      load: round((os.loadavg()[0] ?? 0) / cores),
    };
  }
}

function cpuTimes(): { idle: number; total: number } {
  let idle = 0;
  let total = 0;
  for (const c of os.cpus()) {
    idle += c.times.idle;
    total += c.times.idle + c.times.user + c.times.nice + c.times.sys + c.times.irq;
  }
  return { idle, total };
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
