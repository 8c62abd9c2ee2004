import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, readFileSync, type WriteStream } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const REPO_ROOT = path.resolve(__dirname, '../..');
const START_TIMEOUT_MS = 90_000;

/**
 * One replica of the service, started as production starts it (`npm start`
 * without the build: `node --require ./dist/telemetry.js dist/main.js`, with
 * NODE_ENV=production), always on the same gRPC port so clients find it again
 * after a restart. Its stdout and stderr go to a log file of its own.
 */
export class Replica {
  private child: ChildProcess | undefined;
  private readonly log: WriteStream;
  /** Highest resident set size seen, in MiB. */
  maxRssMb = 0;
  restarts = 0;

  constructor(
    readonly index: number,
    readonly port: number,
    private readonly env: Record<string, string>,
    logFile: string,
  ) {
    this.log = createWriteStream(logFile, { flags: 'a' });
  }

  get pid(): number | undefined {
    return this.running() ? this.child?.pid : undefined;
  }

  running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts the process and resolves once it logs `serving gRPC`. */
  async start(): Promise<void> {
    const child = spawn(
      process.execPath,
      ['--enable-source-maps', '--require', './dist/telemetry.js', 'dist/main.js'],
      {
        cwd: REPO_ROOT,
        env: {
          PATH: process.env.PATH ?? '',
          HOME: process.env.HOME ?? '',
          ...this.env,
          NODE_ENV: 'production',
          GRPC_PORT: String(this.port),
          LOG_LEVEL: 'info',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    this.child = child;
    const ready = new Promise<void>((resolve, reject) => {
      let pending = '';
      const timer = setTimeout(
        () =>
          reject(new Error(`replica ${this.index} did not serve within ${START_TIMEOUT_MS} ms`)),
        START_TIMEOUT_MS,
      );
      child.stdout.on('data', (chunk: Buffer) => {
        this.log.write(chunk);
        pending += chunk.toString('utf8');
        if (pending.includes('"msg":"serving gRPC"')) {
          clearTimeout(timer);
          pending = '';
          resolve();
        } else if (pending.length > 1_000_000) pending = pending.slice(-1000);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`replica ${this.index} exited (${code ?? signal}) before serving`));
      });
    });
    child.stderr.on('data', (chunk: Buffer) => this.log.write(chunk));
    await ready;
  }

  /** SIGKILL: no drain, no goodbye. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || !this.running()) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  /** Starts it again, retrying while it fails to come up (its dependencies may be down too). */
  async restart(): Promise<void> {
    this.restarts++;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.start();
        return;
      } catch (error) {
        await this.kill();
        if (attempt >= 5) throw error;
        await sleep(1000);
      }
    }
  }

  /** Reads the process's RSS now and keeps the highest. */
  sampleRss(): void {
    const pid = this.pid;
    if (!pid) return;
    try {
      const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (match) this.maxRssMb = Math.max(this.maxRssMb, Number(match[1]) / 1024);
    } catch {
      // It exited between the check and the read.
    }
  }

  /** SIGTERM (the graceful drain), then SIGKILL if it takes too long. */
  async stop(): Promise<void> {
    const child = this.child;
    if (child && this.running()) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    }
    await new Promise<void>((resolve) => this.log.end(() => resolve()));
  }
}
