import { writeFile } from 'node:fs/promises';
import type { Redis } from 'ioredis';
import path from 'node:path';
import { type BlackholeProxy, startBlackholeProxy } from './blackhole-proxy';
import { infoField, type RedisFleet, type RedisServer } from './redis-server';
import { waitFor } from './sql-fixtures';

/**
 * A Sentinel deployment of the machine's redis-server: a master, one replica
 * and three sentinels (quorum 2), all on free ports. The replica reaches its
 * master through a proxy, so a test can stop replication without either side
 * noticing (`isolateReplica`): what the master acknowledges from then on is
 * lost if the replica is promoted.
 */
export interface SentinelSetup {
  readonly name: string;
  /** The data node that was master at the start (it may not be now). */
  readonly first: RedisServer;
  /** The data node that was replica at the start. */
  readonly second: RedisServer;
  readonly sentinels: readonly RedisServer[];
  /** `host:port,…` of the sentinels, as REDIS_SENTINELS takes them. */
  readonly sentinelList: string;
  /** The port of the master the sentinels report now. */
  masterPort(): Promise<number>;
  /** From now on the replica receives nothing more from its master (the link stays up). */
  isolateReplica(): void;
  /** SENTINEL FAILOVER, then waits until every sentinel reports the replica as master. */
  failover(): Promise<void>;
  /** Waits until every sentinel reports `port` as master. */
  waitForMaster(port: number): Promise<void>;
  close(): Promise<void>;
}

const NAME = 'swapmaster';
/** Short, so a killed master is noticed soon; the failover itself is what the test waits for. */
const DOWN_AFTER_MS = 1_000;

export interface SentinelSetupOptions {
  /**
   * The first master refuses REPLICAOF, so after a failover the sentinels
   * cannot demote it: it stays a master that clients may still reach, as an
   * old master cut off from the sentinels but not from its clients would.
   */
  undemotableMaster?: boolean;
}

export async function startSentinelSetup(
  fleet: RedisFleet,
  options: SentinelSetupOptions = {},
): Promise<SentinelSetup> {
  // The initial sync goes out at once rather than after the default 5 s delay.
  const dataNode = ['--repl-diskless-sync-delay', '0'];
  const first = await fleet.start([
    ...dataNode,
    ...(options.undemotableMaster
      ? ['--rename-command', 'REPLICAOF', '', '--rename-command', 'SLAVEOF', '']
      : []),
  ]);
  const link: BlackholeProxy = await startBlackholeProxy(first.port);
  const second = await fleet.start([...dataNode, '--replicaof', '127.0.0.1', String(link.port)]);
  const replica = second.client();
  await waitFor('the replica to sync', async () => {
    const info = await replica.info('replication');
    return infoField(info, 'master_link_status') === 'up';
  });

  const sentinels: RedisServer[] = [];
  for (let i = 0; i < 3; i++) {
    sentinels.push(
      await fleet.start(['--sentinel'], {
        // Sentinel rewrites its config file, so each gets one of its own.
        configFile: async (dir) => {
          const file = path.join(dir, 'sentinel.conf');
          await writeFile(
            file,
            [
              `sentinel monitor ${NAME} 127.0.0.1 ${first.port} 2`,
              `sentinel down-after-milliseconds ${NAME} ${DOWN_AFTER_MS}`,
              // Long, so no sentinel "corrects" the replica's proxied master
              // address during a test (it waits this long before it would).
              `sentinel failover-timeout ${NAME} 180000`,
              '',
            ].join('\n'),
          );
          return file;
        },
        ready: /\+monitor master/,
      }),
    );
  }
  // Each sentinel must know the replica (to promote it) and the two others (to vote).
  const clients = sentinels.map((s) => s.client());
  for (const client of clients) {
    await waitFor('the sentinels to discover the replica and each other', async () => {
      const replicas = (await client.call('SENTINEL', 'REPLICAS', NAME)) as unknown[];
      const peers = (await client.call('SENTINEL', 'SENTINELS', NAME)) as unknown[];
      return replicas.length === 1 && peers.length === 2;
    });
  }

  const masterPortOf = async (client: Redis) => {
    const [, port] = (await client.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', NAME)) as [
      string,
      string,
    ];
    return Number(port);
  };
  const waitForMaster = (port: number) =>
    waitFor(`every sentinel to report ${port} as master`, async () => {
      const ports = await Promise.all(clients.map(masterPortOf));
      return ports.every((p) => p === port);
    });
  return {
    name: NAME,
    first,
    second,
    sentinels,
    sentinelList: sentinels.map((s) => `127.0.0.1:${s.port}`).join(','),
    masterPort: () => masterPortOf(clients[0]!),
    isolateReplica: () => link.arm(),
    failover: async () => {
      await clients[0]!.call('SENTINEL', 'FAILOVER', NAME);
      await waitForMaster(second.port);
    },
    waitForMaster,
    close: () => link.close(),
  };
}
