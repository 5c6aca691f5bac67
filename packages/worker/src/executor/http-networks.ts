import { BlockList, isIP } from 'node:net';

/**
 * Which addresses an http task may reach (docs/tasks.md#which-networks-an-http-task-may-reach):
 * the worker's `worker.httpAllowNetworks` and `worker.httpDenyNetworks`. The deny list wins; with
 * an allow list, only its networks are reachable. Every address is checked before anything is
 * dialled — an IP literal at once, a host name's every resolved address (and the connection then
 * goes to those checked addresses only), every redirect's target again.
 */

/**
 * The default deny list: link-local IPv4 (the cloud metadata services at 169.254.169.254 — AWS,
 * GCP, Azure, OpenStack, … — AWS ECS's 169.254.170.2, Tencent's 169.254.0.23), link-local IPv6,
 * AWS's IPv6 metadata address and Alibaba Cloud's metadata address. The same as the default of
 * `worker.httpDenyNetworks` (packages/core/src/config-schema.ts; a test keeps them equal).
 */
export const DEFAULT_HTTP_DENY_NETWORKS: readonly string[] = [
  '169.254.0.0/16',
  'fe80::/10',
  'fd00:ec2::254/128',
  '100.100.100.200/32',
];

export interface HttpNetworkOptions {
  /** Only these networks (CIDR or single addresses) may be reached; null = any not denied. */
  allow?: readonly string[] | null;
  /** These networks may never be reached. @defaultValue DEFAULT_HTTP_DENY_NETWORKS */
  deny?: readonly string[];
}

interface Network {
  /** As configured, normalised: `169.254.0.0/16`. */
  cidr: string;
  list: BlockList;
}

function networkOf(entry: string): Network {
  const slash = entry.indexOf('/');
  const address = (slash < 0 ? entry : entry.slice(0, slash)).trim().toLowerCase();
  const family = isIP(address);
  if (family === 0) throw new RangeError(`invalid network ${JSON.stringify(entry)}: not an IP address`);
  const max = family === 4 ? 32 : 128;
  const prefixText = slash < 0 ? String(max) : entry.slice(slash + 1).trim();
  const prefix = Number(prefixText);
  if (!/^\d{1,3}$/.test(prefixText) || prefix > max) {
    throw new RangeError(`invalid network ${JSON.stringify(entry)}: prefix must be 0 to ${max}`);
  }
  const list = new BlockList();
  list.addSubnet(address, prefix, family === 4 ? 'ipv4' : 'ipv6');
  return { cidr: `${address}/${prefix}`, list };
}

/** Why an address may not be reached, or null if it may. */
export type NetworkVerdict =
  | { allowed: true }
  | { allowed: false; reason: 'denied'; network: string }
  | { allowed: false; reason: 'not-allowed'; allow: readonly string[] };

export class HttpNetworkPolicy {
  readonly allow: readonly string[] | null;
  readonly deny: readonly string[];
  private readonly allowNets: Network[] | null;
  private readonly denyNets: Network[];

  /** @throws RangeError on an entry that is not a network. */
  constructor(options: HttpNetworkOptions = {}) {
    this.allowNets = options.allow == null ? null : options.allow.map(networkOf);
    this.denyNets = (options.deny ?? DEFAULT_HTTP_DENY_NETWORKS).map(networkOf);
    this.allow = this.allowNets?.map((n) => n.cidr) ?? null;
    this.deny = this.denyNets.map((n) => n.cidr);
  }

  /**
   * Whether `address` (an IPv4 or IPv6 literal, brackets allowed) may be reached. IPv4-mapped IPv6
   * addresses (`::ffff:169.254.169.254`) are judged as the IPv4 address they reach.
   */
  check(address: string): NetworkVerdict {
    const bare = address.replace(/^\[(.*)\]$/, '$1');
    const family = isIP(bare);
    if (family === 0) return { allowed: false, reason: 'not-allowed', allow: this.allow ?? [] };
    const type = family === 4 ? 'ipv4' : 'ipv6';
    const denied = this.denyNets.find((n) => n.list.check(bare, type));
    if (denied) return { allowed: false, reason: 'denied', network: denied.cidr };
    if (this.allowNets !== null && !this.allowNets.some((n) => n.list.check(bare, type))) {
      return { allowed: false, reason: 'not-allowed', allow: this.allow ?? [] };
    }
    return { allowed: true };
  }
}

/**
 * An http task's target (or a redirect's) is in a network the worker may not reach. Nothing was
 * dialled. The message names the address, the network and the setting:
 * `http task refused: 169.254.169.254 is in a denied network (169.254.0.0/16, worker.httpDenyNetworks)`.
 */
export class HttpTargetRefusedError extends Error {
  override readonly name = 'HttpTargetRefusedError';

  constructor(
    readonly address: string,
    readonly verdict: Exclude<NetworkVerdict, { allowed: true }>,
    /** The host name that resolved to `address`, if the URL named one. */
    readonly host: string | null,
    /** Where it was met: `redirect 1 of http://…` */
    readonly context: string | null,
  ) {
    const what = host === null ? address : `${host} resolves to ${address}, which`;
    const why =
      verdict.reason === 'denied'
        ? `is in a denied network (${verdict.network}, worker.httpDenyNetworks)`
        : `is not in an allowed network (worker.httpAllowNetworks: ${
            verdict.allow.length > 0 ? verdict.allow.join(', ') : 'none'
          })`;
    super(`http task refused: ${what} ${why}${context === null ? '' : `; ${context}`}`);
  }
}
