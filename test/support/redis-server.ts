import { type ChildProcessByStdio, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { Redis } from 'ioredis';
import { freePort } from './service-process';

/**
 * `redis-server` processes of a test's own (never the shared one), each on a
 * free port in a temporary directory, in the foreground and without
 * persistence. A {@link RedisFleet} ends all of them (in afterAll, so none
 * outlives a failed test) and removes their directories.
 */

/** One redis-server (or sentinel) child. */
export interface RedisServer {
  port: number;
  /** Its working directory (config files, nodes.conf). */
  dir: string;
  /** Everything it printed so far. */
  output(): string;
  running(): boolean;
  /** SIGKILL, as a crash; resolves once it has exited. */
  kill(): Promise<void>;
  /** A client of its own, disconnected by the fleet's close(). */
  client(): Redis;
}

type Child = ChildProcessByStdio<null, Readable, Readable>;

const COMMON = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'];

/** Every server a test started, and the clients it opened on them. */
export class RedisFleet {
  private readonly children = new Set<Child>();
  private readonly dirs: string[] = [];
  private readonly clients: Redis[] = [];

  /**
   * Starts `redis-server` with `args` (after the config file, when given) on a
   * free port, and resolves once it logs `ready` (a line a data node prints
   * when it accepts connections, unless given).
   */
  async start(
    args: readonly string[],
    options: { configFile?: (dir: string, port: number) => Promise<string>; ready?: RegExp } = {},
  ): Promise<RedisServer> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'swap-redis-'));
    this.dirs.push(dir);
    const port = await freePort();
    const config = options.configFile ? [await options.configFile(dir, port)] : [];
    const child = spawn(
      'redis-server',
      [...config, '--port', String(port), '--dir', dir, ...COMMON, ...args],
      { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    let output = '';
    const ready = options.ready ?? /Ready to accept connections/;
    const running = () => child.exitCode === null && child.signalCode === null;
    const kill = async () => {
      if (!running()) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGKILL');
      await exited;
    };
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`redis-server on ${port} did not start:\n${output}`)),
          20_000,
        );
        child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
          output += chunk;
          if (ready.test(output)) {
            clearTimeout(timer);
            resolve();
          }
        });
        child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
        child.once('exit', (code, signal) => {
          clearTimeout(timer);
          reject(new Error(`redis-server on ${port} exited (${code ?? signal}):\n${output}`));
        });
      });
    } catch (error) {
      await kill();
      throw error;
    }
    return {
      port,
      dir,
      output: () => output,
      running,
      kill,
      client: () => this.clientOf(port),
    };
  }

  /** A plain client of 127.0.0.1:`port` that gives up at once while the server is down. */
  clientOf(port: number): Redis {
    const client = new Redis({
      host: '127.0.0.1',
      port,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: true,
      retryStrategy: () => 100,
    });
    // A server killed on purpose is no test failure; the calls made on it say what matters.
    client.on('error', () => undefined);
    this.clients.push(client);
    return client;
  }

  async close(): Promise<void> {
    for (const client of this.clients) client.disconnect();
    await Promise.all(
      [...this.children].map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGKILL');
        await exited;
      }),
    );
    await Promise.all(this.dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  }
}

/** The value of `field` in an INFO reply (`role`, `master_link_status`, …). */
export function infoField(info: string, field: string): string | undefined {
  const line = info.split(/\r?\n/).find((l) => l.startsWith(`${field}:`));
  return line?.slice(field.length + 1);
}
