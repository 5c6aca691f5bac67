// Small promise wrappers over node-zookeeper-client for the harness's own tests.
import zookeeper from 'node-zookeeper-client';

export type ZkClient = zookeeper.Client;

export function connectZk(connectString: string, sessionTimeout = 10_000): Promise<ZkClient> {
  const client = zookeeper.createClient(connectString, { sessionTimeout, retries: 0 });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.close();
      reject(new Error(`cannot connect to ${connectString}`));
    }, 20_000);
    client.once('connected', () => {
      clearTimeout(timer);
      resolve(client);
    });
    client.connect();
  });
}

export function create(
  client: ZkClient,
  path: string,
  data: string,
  mode = zookeeper.CreateMode.PERSISTENT,
): Promise<string> {
  return new Promise((resolve, reject) =>
    client.create(path, Buffer.from(data), mode, (error, created) =>
      error ? reject(error) : resolve(created),
    ),
  );
}

export function getData(client: ZkClient, path: string): Promise<string> {
  return new Promise((resolve, reject) =>
    client.getData(path, (error, data) => (error ? reject(error) : resolve(data?.toString() ?? ''))),
  );
}

export function exists(client: ZkClient, path: string): Promise<boolean> {
  return new Promise((resolve, reject) =>
    client.exists(path, (error, stat) =>
      error ? reject(error) : resolve(stat !== null && stat !== undefined),
    ),
  );
}

export function getChildren(client: ZkClient, path: string): Promise<string[]> {
  return new Promise((resolve, reject) =>
    client.getChildren(path, (error, children) => (error ? reject(error) : resolve(children))),
  );
}

export { zookeeper };
