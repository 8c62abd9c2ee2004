import { type ChildProcess, spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';

/**
 * A `redis-server` of the run's own, without persistence, so killing it loses
 * every key (locks and the fencing counter), as a crash of an unreplicated
 * Redis would. It restarts on the same port.
 */
export class RedisInstance {
  private child: ChildProcess | undefined;

  constructor(readonly port: number) {}

  async start(): Promise<void> {
    const child = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: 'ignore' },
    );
    this.child = child;
    for (let i = 0; i < 100; i++) {
      if (await this.ping()) return;
      if (child.exitCode !== null) break;
      await sleep(100);
    }
    throw new Error(`redis-server on port ${this.port} did not start`);
  }

  /** SIGKILL, and a new server on the same port after `downMs`. */
  async killAndRestart(downMs: number): Promise<void> {
    await this.kill();
    await sleep(downMs);
    await this.start();
  }

  /** Every client's commands wait for `ms` (`CLIENT PAUSE … ALL`). */
  async pause(ms: number): Promise<void> {
    await this.withClient((redis) => redis.call('CLIENT', 'PAUSE', String(ms), 'ALL'));
    await sleep(ms);
  }

  /** The keys matching `pattern` (SCAN). */
  async keys(pattern: string): Promise<string[]> {
    return this.withClient(async (redis) => {
      const found: string[] = [];
      let cursor = '0';
      do {
        const [next, batch] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
        found.push(...batch);
        cursor = next;
      } while (cursor !== '0');
      return found;
    });
  }

  async kill(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  private async ping(): Promise<boolean> {
    return this.withClient(async (redis) => (await redis.ping()) === 'PONG').catch(() => false);
  }

  private async withClient<T>(work: (redis: Redis) => Promise<T>): Promise<T> {
    const redis = new Redis({
      port: this.port,
      host: '127.0.0.1',
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      retryStrategy: () => null,
    });
    redis.on('error', () => undefined);
    try {
      await redis.connect();
      return await work(redis);
    } finally {
      redis.disconnect();
    }
  }
}
