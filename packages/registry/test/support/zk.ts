import { registerCleanup, timing } from '@sched/testkit';
import zookeeper from 'node-zookeeper-client';
import { ZkSession, type ZkSessionOptions } from '../../src/zk-session.js';

/** Opens a ZkSession that is closed when the test file ends. */
export async function openSession(
  connectString: string,
  opts: Partial<ZkSessionOptions> = {},
): Promise<ZkSession> {
  const session = await ZkSession.connect({
    connectString,
    sessionTimeoutMs: 3000,
    connectTimeoutMs: timing.forWaiting(),
    ...opts,
  });
  registerCleanup('close ZkSession', () => session.close());
  return session;
}

/**
 * Expires a session on the server (the old Curator KillSession): a second client attaches
 * to the same session id and password, waits until connected, and closes it. The server
 * then deletes the session's ephemeral nodes and fires their watches; the original client
 * learns EXPIRED only when it reconnects.
 */
export async function expireSessionOnServer(
  connectString: string,
  credentials: { sessionId: Buffer; sessionPassword: Buffer },
  sessionTimeoutMs: number,
): Promise<void> {
  const client = zookeeper.createClient(connectString, {
    sessionTimeout: sessionTimeoutMs,
    sessionId: credentials.sessionId,
    sessionPassword: credentials.sessionPassword,
  } as Partial<zookeeper.Option>);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error('expireSessionOnServer: could not attach')),
      timing.forWaiting(),
    );
    client.once('connected', () => {
      clearTimeout(timer);
      resolve();
    });
    client.connect();
  });
  await new Promise<void>((resolve) => {
    client.once('disconnected', () => resolve());
    client.close();
  });
}

/** A raw library client (no wrapper), for observing the server from outside. */
export async function rawClient(connectString: string): Promise<zookeeper.Client> {
  const client = zookeeper.createClient(connectString, { sessionTimeout: 10_000 });
  await new Promise<void>((resolve) => {
    client.once('connected', () => resolve());
    client.connect();
  });
  registerCleanup('close raw client', () => client.close());
  return client;
}
