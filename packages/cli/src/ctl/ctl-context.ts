import { dialAddress, NotFoundError, requireZkCredentials, SchedError, zkInsecureWarning } from '@sched/core';
import { readClusterStatus } from '@sched/master';
import { RegistryPaths, ZkSession } from '@sched/registry';
import { ApiClient, type ApiRequest, MasterUnreachableError } from './api-client.js';
import { type CtlConfig, requireSecret } from './ctl-config.js';

/** How long a master may take to answer `/healthz` before the next one is tried. */
const PROBE_TIMEOUT_MS = 2_000;

/**
 * What a sched-ctl command works with, made on first use and closed at the end: a ZooKeeper
 * session (for `zk`, `cluster` and finding a master) and a REST client to a live master.
 */
export class CtlContext {
  private session: ZkSession | undefined;
  private client: ApiClient | undefined;
  readonly paths: RegistryPaths;

  constructor(readonly cfg: CtlConfig) {
    this.paths = new RegistryPaths(cfg.config.zk.root);
  }

  /**
   * A ZooKeeper session, or a TimeoutError after `--connect-timeout`. Like the daemons, sched-ctl
   * uses ZooKeeper only with credentials (`SCHED_ZK_AUTH`) or when told `--insecure-zk` (a warning
   * on stderr then): a ConfigError otherwise (docs/security.md#zookeeper).
   */
  async zk(): Promise<ZkSession> {
    if (!this.session) {
      const { zk } = this.cfg.config;
      if (requireZkCredentials(this.cfg.config) === 'insecure')
        process.stderr.write(`sched-ctl: warning: ${zkInsecureWarning('sched-ctl')}\n`);
      this.session = await ZkSession.connect({
        connectString: zk.connect,
        sessionTimeoutMs: zk.sessionTimeoutMs,
        requestTimeoutMs: Math.min(zk.requestTimeoutMs, this.cfg.requestTimeoutMs),
        connectTimeoutMs: this.cfg.connectTimeoutMs,
        ...(zk.auth ? { auth: zk.auth } : {}),
      }).catch((err: unknown) => {
        if (err instanceof SchedError) {
          throw new SchedError(
            err.code,
            `${err.message} (set SCHED_ZK or --zk to the ZooKeeper connect string; --connect-timeout to wait longer)`,
          );
        }
        throw err;
      });
    }
    return this.session;
  }

  /**
   * Calls the REST API on a live master: `--master` if given, else the masters registered in
   * ZooKeeper, the leader first; a master that cannot be reached is skipped for the next one.
   */
  async api<T>(r: ApiRequest): Promise<T> {
    return this.withMaster(r.method, (c) => c.json<T>(r));
  }

  async apiStream(r: ApiRequest) {
    return this.withMaster(r.method, (c) => c.stream(r));
  }

  /**
   * A registered master may be paused or half-dead (its znode outlives it by up to a session
   * timeout), so each candidate is first probed on `/healthz` with a short deadline. Once the
   * real call is sent, only a GET is retried on the next master: a POST that reached a master
   * whose answer was lost may have been done, and must not be done twice (a second trigger).
   */
  private async withMaster<T>(method: ApiRequest['method'], call: (c: ApiClient) => Promise<T>): Promise<T> {
    const secret = requireSecret(this.cfg);
    if (this.client) return call(this.client);
    const candidates = this.cfg.master ? [this.cfg.master] : await this.masterAddresses();
    const probeMs = Math.min(PROBE_TIMEOUT_MS, this.cfg.requestTimeoutMs);
    let last: unknown;
    for (const address of candidates) {
      const client = new ApiClient(address, secret, this.cfg.requestTimeoutMs);
      try {
        await new ApiClient(address, secret, probeMs).json({ method: 'GET', path: '/healthz' });
      } catch (err) {
        last = err;
        continue;
      }
      try {
        const result = await call(client);
        this.client = client;
        return result;
      } catch (err) {
        if (!(err instanceof MasterUnreachableError) || method !== 'GET') throw err;
        last = err;
      }
    }
    throw new SchedError(
      'NO_MASTER',
      `no master answered (tried ${candidates.join(', ')}): ${(last as Error)?.message ?? 'none'}`,
      { retriable: true },
    );
  }

  private async masterAddresses(): Promise<string[]> {
    const status = await readClusterStatus(await this.zk(), this.paths);
    if (status.masters.length === 0) {
      throw new NotFoundError(
        `no live master is registered under ${this.paths.members('master')} in ZooKeeper ${this.cfg.config.zk.connect}; start one with \`sched-master start\``,
      );
    }
    return [...status.masters]
      .sort((a, b) => Number(b.leader) - Number(a.leader))
      .map((m) => dialAddress(this.cfg.config.node.peerMap, m.address));
  }

  /** Closes the session, bounded: a command must not hang on a ZooKeeper that went away meanwhile. */
  async close(): Promise<void> {
    if (!this.session) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.session.close().catch(() => {}),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, 2_000);
      }),
    ]);
    clearTimeout(timer);
  }
}
