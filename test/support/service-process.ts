import { type ChildProcessByStdio, spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * The service as production runs it, in a process of its own, with the
 * telemetry bootstrap preloaded. `--require tsx/cjs` comes first because Node
 * runs every `--require` before any `--import`: with `--import tsx`, the
 * preloaded src/telemetry.ts would be loaded before tsx could compile it.
 */

const REPO_ROOT = path.resolve(__dirname, '../..');

/** One pino line from the child's stdout. */
export interface LogLine {
  level: string;
  msg: string;
  [field: string]: unknown;
}

export interface ServiceProcess {
  /** The gRPC port the service reported it bound. */
  port: number;
  logs: LogLine[];
  stderr(): string;
  /** SIGTERM, then SIGKILL if it has not exited in time; safe to call twice. */
  stop(): Promise<void>;
}

/** A port nobody listens on right now: bind port 0, note it, let it go. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * Starts src/main.ts with `env` (and nothing of the test runner's environment
 * but PATH and HOME) on an ephemeral gRPC port, and resolves once it serves.
 * It learns the port from the `serving gRPC` line, so LOG_LEVEL stays at info.
 */
export async function startServiceProcess(
  env: Record<string, string>,
  startTimeoutMs = 60_000,
): Promise<ServiceProcess> {
  const child: ChildProcessByStdio<null, Readable, Readable> = spawn(
    process.execPath,
    ['--require', 'tsx/cjs', '--require', './src/telemetry.ts', 'src/main.ts'],
    {
      cwd: REPO_ROOT,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '',
        NODE_ENV: 'test',
        GRPC_HOST: '127.0.0.1',
        GRPC_PORT: '0',
        SEED_DEMO: 'false',
        ...env,
        LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const logs: LogLine[] = [];
  let stderr = '';
  let pending = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) {
      try {
        logs.push(JSON.parse(line) as LogLine);
      } catch {
        logs.push({ level: 'raw', msg: line });
      }
    }
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const running = () => child.exitCode === null && child.signalCode === null;

  const stop = async () => {
    if (!running()) return;
    child.kill('SIGTERM');
    const stopped = await Promise.race([exited.then(() => true), sleep(15_000, false)]);
    if (!stopped && running()) {
      child.kill('SIGKILL');
      await exited;
    }
  };

  const giveUpAt = Date.now() + startTimeoutMs;
  for (;;) {
    const serving = logs.find((l) => l.msg === 'serving gRPC');
    if (serving && typeof serving.port === 'number') {
      return { port: serving.port, logs, stderr: () => stderr, stop };
    }
    if (!running() || Date.now() > giveUpAt) {
      const why = running() ? 'timed out' : `exited with ${child.exitCode ?? child.signalCode}`;
      await stop();
      throw new Error(
        `the service did not start (${why}); stderr:\n${stderr}\nstdout:\n${logs.map((l) => JSON.stringify(l)).join('\n')}`,
      );
    }
    await sleep(50);
  }
}
