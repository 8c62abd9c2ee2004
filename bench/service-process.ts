import { spawn } from 'node:child_process';
import { createServer, connect } from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const ROOT = path.resolve(__dirname, '..');
const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;

/** A service started in a child process; `stop()` sends SIGTERM and waits for a clean exit. */
export interface ServiceProcess {
  port: number;
  pid: number;
  stop(): Promise<void>;
}

/**
 * Starts the service the way production does: its own entry point with the
 * telemetry bootstrap preloaded before anything it instruments, configured
 * only by `env`, and stopped by SIGTERM (which drains it and flushes its
 * telemetry). It runs from source, as `npm run dev` does, so no build is
 * needed. Resolves once the service accepts connections on its port. With
 * `profileDir`, it writes a CPU profile of its whole life there as it exits.
 */
export async function startServiceProcess(
  name: string,
  env: Record<string, string | undefined>,
  profileDir?: string,
): Promise<ServiceProcess> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [
      '--enable-source-maps',
      // The whole life of the process (warm-up included), written when it exits.
      ...(profileDir
        ? [
            '--cpu-prof',
            `--cpu-prof-dir=${profileDir}`,
            `--cpu-prof-name=swap-bench-${name}.cpuprofile`,
          ]
        : []),
      // tsx/cjs first: --require runs in order, and the bootstrap is TypeScript.
      '--require',
      require.resolve('tsx/cjs'),
      '--require',
      path.join(ROOT, 'src/telemetry.ts'),
      path.join(ROOT, 'src/main.ts'),
    ],
    {
      cwd: ROOT,
      env: { ...env, GRPC_PORT: String(port) },
      // Its logs go to our stderr, beside the progress lines, never into the report.
      stdio: ['ignore', 2, 2],
    },
  );
  let exitCode: number | null | undefined;
  const exited = new Promise<void>((resolve) =>
    child.once('exit', (code) => {
      exitCode = code;
      resolve();
    }),
  );
  // Never outlive the bench, whatever way it ends.
  const orphanGuard = () => child.kill('SIGKILL');
  process.once('exit', orphanGuard);

  const until = Date.now() + READY_TIMEOUT_MS;
  while (!(await accepts(port))) {
    if (exitCode !== undefined || Date.now() > until) {
      child.kill('SIGKILL');
      throw new Error(`${name}: the service did not start (exit ${String(exitCode)})`);
    }
    await sleep(200);
  }
  let stopping: Promise<void> | undefined;
  return {
    port,
    pid: child.pid!,
    stop: () =>
      (stopping ??= (async () => {
        if (exitCode === undefined) child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(timer);
        process.removeListener('exit', orphanGuard);
        if (exitCode !== 0) throw new Error(`${name}: the service exited with ${exitCode}`);
      })()),
  };
}

/** A port nobody listens on right now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address
          ? resolve(address.port)
          : reject(new Error('no port')),
      );
    });
  });
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
