import { SchedError } from './errors.js';

/**
 * Node identity (docs/design.md#identity). A daemon process is one incarnation: `host:port` plus the
 * epoch-ms `startTime` of the process plus its `pid`. The key `host:port_startTime` names
 * everything written for it (registry znodes, task attempts, failover records), because an
 * address alone is reused by the next process on the same host and port.
 *
 * Hosts are IPv4 addresses or DNS hostnames. IPv6 literals are not accepted: their colons
 * would make `host:port` ambiguous and nothing in sched needs them yet.
 */
export interface Incarnation {
  host: string;
  port: number;
  /** Epoch milliseconds when the process started. */
  startTime: number;
  pid: number;
}

export interface ParsedIncarnationKey {
  host: string;
  port: number;
  /** `host:port` */
  address: string;
  startTime: number;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const HOSTNAME_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** Whether `host` is an IPv4 address or a DNS hostname (labels of letters, digits and inner hyphens). */
export function isValidHost(host: string): boolean {
  if (IPV4.test(host)) return true;
  // A dotted all-numeric name that is not a valid IPv4 address (`300.1.1.1`) is a typo, not a hostname.
  if (/^[\d.]+$/.test(host)) return false;
  if (host.length === 0 || host.length > 253) return false;
  return host.split('.').every((label) => HOSTNAME_LABEL.test(label));
}

function isValidPort(port: number): boolean {
  return Number.isInteger(port) && port >= 1 && port <= 65535;
}

function isValidStartTime(startTime: number): boolean {
  return Number.isSafeInteger(startTime) && startTime >= 0;
}

function invalidKey(key: string, why: string): SchedError {
  return new SchedError(
    'INCARNATION_KEY_INVALID',
    `invalid incarnation key ${JSON.stringify(key)}: ${why}; expected host:port_startTime, e.g. 10.0.0.5:5678_1718000000000`,
  );
}

/** `host:port` of an incarnation. */
export function incarnationAddress(i: { host: string; port: number }): string {
  return `${i.host}:${i.port}`;
}

/**
 * The key `host:port_startTime`. Throws on a host, port or startTime that would make a key
 * `parseIncarnationKey` rejects, so a bad identity fails where it is made, not where it is read.
 */
export function incarnationKey(i: { host: string; port: number; startTime: number }): string {
  const key = `${incarnationAddress(i)}_${i.startTime}`;
  if (!isValidHost(i.host))
    throw invalidKey(key, `host ${JSON.stringify(i.host)} is not an IPv4 address or hostname`);
  if (!isValidPort(i.port)) throw invalidKey(key, `port ${i.port} is not an integer in 1..65535`);
  if (!isValidStartTime(i.startTime))
    throw invalidKey(key, `startTime ${i.startTime} is not a non-negative integer`);
  return key;
}

/** Parses and validates `host:port_startTime`. @throws SchedError `INCARNATION_KEY_INVALID`. */
export function parseIncarnationKey(key: string): ParsedIncarnationKey {
  const underscore = key.lastIndexOf('_');
  if (underscore < 0) throw invalidKey(key, 'no "_" before the start time');
  const address = key.slice(0, underscore);
  const startText = key.slice(underscore + 1);
  const colon = address.lastIndexOf(':');
  if (colon < 0) throw invalidKey(key, 'no ":" between host and port');
  const host = address.slice(0, colon);
  const portText = address.slice(colon + 1);

  if (!isValidHost(host))
    throw invalidKey(key, `host ${JSON.stringify(host)} is not an IPv4 address or hostname`);
  if (!/^\d{1,5}$/.test(portText) || !isValidPort(Number(portText))) {
    throw invalidKey(key, `port ${JSON.stringify(portText)} is not an integer in 1..65535`);
  }
  if (!/^\d{1,16}$/.test(startText) || !isValidStartTime(Number(startText))) {
    throw invalidKey(key, `start time ${JSON.stringify(startText)} is not epoch milliseconds`);
  }
  return { host, port: Number(portText), address, startTime: Number(startText) };
}

/** Whether `address` is `host:port` with a valid host and a port in 1..65535. */
export function isValidAddress(address: string): boolean {
  const colon = address.lastIndexOf(':');
  if (colon < 0) return false;
  const portText = address.slice(colon + 1);
  return isValidHost(address.slice(0, colon)) && /^\d{1,5}$/.test(portText) && isValidPort(Number(portText));
}

/**
 * Peer address rewrites (`node.peerMap`, like ioredis' `natMap`): the address a peer registered
 * in ZooKeeper → the address to dial instead, for peers that are reachable only through a
 * forwarder (NAT, a port mapping, a proxy). Addresses not in the map are dialled as registered.
 */
export type PeerMap = Readonly<Record<string, string>>;

/** The address to connect to for a peer registered at `address`. */
export function dialAddress(peerMap: PeerMap | undefined, address: string): string {
  return (peerMap && Object.hasOwn(peerMap, address) ? peerMap[address] : undefined) ?? address;
}

/**
 * A daemon's identity once its endpoint is bound: it is known to the cluster at its advertised
 * port (`node.advertisePort`, for a forwarder in front of it) or else the port it listens on.
 */
export function boundIdentity(
  node: { host: string; advertisePort?: number },
  boundPort: number,
  startTime: number,
): { address: string; listenAddress: string; key: string } {
  const port = node.advertisePort ?? boundPort;
  return {
    address: incarnationAddress({ host: node.host, port }),
    listenAddress: incarnationAddress({ host: node.host, port: boundPort }),
    key: incarnationKey({ host: node.host, port, startTime }),
  };
}
