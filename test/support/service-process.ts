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

/** One pino line from the child's stdout (a line that is not JSON has level `raw`). */
export interface LogLine {
  level: string;
  msg: string;
  [field: string]: unknown;
}

/** How the process ended: an exit code, or the signal that killed it. */
export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ServiceProcessOptions {
  /**
   * Variables of the test runner's environment to pass on when they are set
   * (REDIS_URL, say); nothing else of it reaches the child but PATH and HOME.
   */
  inherit?: readonly string[];
  /** How long to wait for the `serving gRPC` line; 60 s unless given. */
  startTimeoutMs?: number;
}

export interface ServiceProcess {
  /** The gRPC port the service reported it bound. */
  port: number;
  pid: number;
  /** Every stdout line so far, parsed; it grows as the child logs. */
  logs: LogLine[];
  stderr(): string;
  /**
   * The first line, past or future, whose msg is `msg`. Rejects if the process
   * exits first or nothing is logged within `timeoutMs` (60 s unless given).
   */
  logged(msg: string, timeoutMs?: number): Promise<LogLine>;
  /** Whether the process has neither exited nor been killed yet. */
  running(): boolean;
  /** Sends `signal` if the process is still running; does not wait for it to exit. */
  kill(signal: NodeJS.Signals): void;
  /** Settles once the process has exited, however it ended. */
  exited: Promise<ProcessExit>;
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

/** How a process that was not meant to start ended, and what it said. */
export interface FailedStart extends ProcessExit {
  stdout: string;
  stderr: string;
}

/**
 * Runs src/main.ts with `env` (as {@link startServiceProcess} would) until it
 * exits by itself, for configurations that must refuse to start; rejects if it
 * starts serving instead (it is then stopped).
 */
export async function runUntilExit(
  env: Record<string, string>,
  options: Pick<ServiceProcessOptions, 'inherit'> = {},
): Promise<FailedStart> {
  const child = spawnService({ METRICS_PORT: '0', ...env }, options);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    if (stdout.includes('"msg":"serving gRPC"')) child.kill('SIGKILL');
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exit = await new Promise<ProcessExit>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  if (stdout.includes('"msg":"serving gRPC"')) {
    throw new Error(`the service started serving instead of refusing to; stdout:\n${stdout}`);
  }
  return { ...exit, stdout, stderr };
}

/** The child process of src/main.ts with `env` over the defaults of a test service. */
function spawnService(
  env: Record<string, string>,
  options: Pick<ServiceProcessOptions, 'inherit'>,
): ChildProcessByStdio<null, Readable, Readable> {
  const inherited = Object.fromEntries(
    (options.inherit ?? []).flatMap((name) => {
      const value = process.env[name];
      return value ? [[name, value]] : [];
    }),
  ) as Record<string, string>;
  return spawn(
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
        ...inherited,
        ...env,
        LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
}

/**
 * Starts src/main.ts with `env` on an ephemeral gRPC port, and resolves once it
 * serves. It learns the port from the `serving gRPC` line, so LOG_LEVEL stays at
 * info. Unless `env` sets METRICS_PORT, the Prometheus exporter gets a free
 * port: with none (0) and no OTLP endpoint the telemetry bootstrap would do
 * nothing, which is not how production runs.
 */
export async function startServiceProcess(
  env: Record<string, string>,
  options: ServiceProcessOptions = {},
): Promise<ServiceProcess> {
  const metricsPort = env.METRICS_PORT ?? String(await freePort());
  const child = spawnService({ ...env, METRICS_PORT: metricsPort }, options);
  const logs: LogLine[] = [];
  // Woken on every new line and at exit, so `logged` never polls.
  const listeners = new Set<() => void>();
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
    for (const listener of listeners) listener();
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const running = () => child.exitCode === null && child.signalCode === null;
  const exited = new Promise<ProcessExit>((resolve) => {
    child.once('exit', (code, signal) => {
      resolve({ code, signal });
      for (const listener of listeners) listener();
    });
  });
  const kill = (signal: NodeJS.Signals) => {
    if (running()) child.kill(signal);
  };
  const stop = async () => {
    if (!running()) return;
    child.kill('SIGTERM');
    const stopped = await Promise.race([exited.then(() => true), sleep(15_000, false)]);
    if (!stopped && running()) {
      child.kill('SIGKILL');
      await exited;
    }
  };
  const output = () =>
    `stderr:\n${stderr}\nstdout:\n${logs.map((l) => JSON.stringify(l)).join('\n')}`;
  const logged = (msg: string, timeoutMs = 60_000) =>
    new Promise<LogLine>((resolve, reject) => {
      const finish = (outcome: () => void) => {
        listeners.delete(check);
        clearTimeout(timer);
        outcome();
      };
      const check = () => {
        const line = logs.find((l) => l.msg === msg);
        if (line) finish(() => resolve(line));
        else if (!running()) {
          const how = child.exitCode ?? child.signalCode;
          finish(() =>
            reject(new Error(`the service exited (${how}) before logging "${msg}"; ${output()}`)),
          );
        }
      };
      const timer = setTimeout(
        () =>
          finish(() =>
            reject(
              new Error(`the service did not log "${msg}" within ${timeoutMs} ms; ${output()}`),
            ),
          ),
        timeoutMs,
      );
      listeners.add(check);
      check();
    });

  let port: unknown;
  try {
    ({ port } = await logged('serving gRPC', options.startTimeoutMs ?? 60_000));
    if (typeof port !== 'number') throw new Error(`"serving gRPC" without a port; ${output()}`);
  } catch (error) {
    await stop();
    throw new Error(`the service did not start: ${(error as Error).message}`, { cause: error });
  }
  return {
    port,
    pid: child.pid!,
    logs,
    stderr: () => stderr,
    logged,
    running,
    kill,
    exited,
    stop,
  };
}
