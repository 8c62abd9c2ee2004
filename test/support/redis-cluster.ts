import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Redis } from 'ioredis';
import { freePort } from './service-process';
import { infoField, type RedisFleet, type RedisServer } from './redis-server';
import { waitFor } from './sql-fixtures';

const run = promisify(execFile);

/**
 * A Redis Cluster of the machine's redis-server: three masters, each with one
 * replica, made with `redis-cli --cluster create`, on free ports (data and bus).
 * A short node timeout, so a killed master's replica takes over soon.
 */
export interface ClusterSetup {
  readonly nodes: readonly RedisServer[];
  /** `host:port,…` of the masters, as REDIS_CLUSTER_NODES takes them. */
  readonly seedList: string;
  /** The node serving `key`'s slot now, as a live node reports it. */
  ownerOf(key: string): Promise<RedisServer>;
  /** Kills the master serving `key`, then waits until its replica serves the slot. */
  killOwnerOf(key: string): Promise<{ killed: RedisServer; promoted: RedisServer }>;
}

export async function startClusterSetup(fleet: RedisFleet): Promise<ClusterSetup> {
  const nodes: RedisServer[] = [];
  for (let i = 0; i < 6; i++) {
    nodes.push(
      await fleet.start([
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        'nodes.conf',
        '--cluster-node-timeout',
        '1000',
        '--cluster-port',
        String(await freePort()),
        '--repl-diskless-sync-delay',
        '0',
      ]),
    );
  }
  await run('redis-cli', [
    '--cluster',
    'create',
    ...nodes.map((n) => `127.0.0.1:${n.port}`),
    '--cluster-replicas',
    '1',
    '--cluster-yes',
  ]);
  const clients = new Map(nodes.map((n) => [n, n.client()]));
  const live = () => nodes.filter((n) => n.running());
  await waitFor('every node to see the cluster ok, and every replica in sync', async () => {
    for (const node of live()) {
      const client = clients.get(node)!;
      const state = infoField(String(await client.call('CLUSTER', 'INFO')), 'cluster_state');
      if (state !== 'ok') return false;
      const info = await client.info('replication');
      if (infoField(info, 'role') === 'slave' && infoField(info, 'master_link_status') !== 'up')
        return false;
    }
    return true;
  });

  const ownerPort = async (client: Redis, key: string): Promise<number> => {
    const slot = Number(await client.call('CLUSTER', 'KEYSLOT', key));
    const ranges = (await client.call('CLUSTER', 'SLOTS')) as [number, number, [string, number]][];
    const range = ranges.find(([from, to]) => from <= slot && slot <= to);
    return range ? Number(range[2][1]) : -1;
  };
  const ownerOf = async (key: string) => {
    const port = await ownerPort(clients.get(live()[0]!)!, key);
    return nodes.find((n) => n.port === port)!;
  };
  const masters = [];
  for (const node of nodes) {
    const info = await clients.get(node)!.info('replication');
    if (infoField(info, 'role') === 'master') masters.push(node);
  }
  return {
    nodes,
    seedList: masters.map((n) => `127.0.0.1:${n.port}`).join(','),
    ownerOf,
    killOwnerOf: async (key) => {
      const killed = await ownerOf(key);
      await killed.kill();
      let promoted: RedisServer | undefined;
      await waitFor('a replica to take over the killed master', async () => {
        for (const node of live()) {
          const client = clients.get(node)!;
          const state = infoField(String(await client.call('CLUSTER', 'INFO')), 'cluster_state');
          if (state !== 'ok') return false;
        }
        promoted = await ownerOf(key);
        return promoted !== undefined && promoted !== killed;
      });
      return { killed, promoted: promoted! };
    },
  };
}
