/**
 * One service process of the telemetry comparison, forked by telemetry-bench.ts as
 *
 *   node --require tsx/cjs --require ./src/telemetry.ts bench/telemetry-child.ts
 *
 * so that, as in production, the OpenTelemetry bootstrap has run (or found
 * OTEL_SDK_DISABLED) before grpc-js, pg and ioredis are loaded. It is
 * configured by the environment the parent hands it, serves gRPC, and talks to
 * the parent over IPC only: `ready` with its port, then on `stop` its lock
 * statistics, after draining and flushing the telemetry.
 */
import pino from 'pino';
import { loadConfig } from '../src/config';
import type { ScheduleLockStats } from '../src/coordination/schedule-locks';
import type { Clock } from '../src/domain/clock';
import { startService } from '../src/main';
import { registeredTelemetry } from '../src/observability/telemetry-registry';
import { BENCH_TODAY } from './swap-pairs';

/** What the child tells the parent. */
export type ChildMessage =
  | { type: 'ready'; port: number; telemetry: boolean }
  | { type: 'stopped'; locks: ScheduleLockStats };

/** What the parent tells the child. */
export type ParentMessage = { type: 'stop' };

function send(message: ChildMessage): Promise<void> {
  return new Promise((resolve, reject) =>
    process.send!(message, undefined, {}, (error) => (error ? reject(error) : resolve())),
  );
}

async function main(): Promise<void> {
  if (!process.send) throw new Error('telemetry-child.ts runs only as a forked child of the bench');
  const clock: Clock = { now: () => new Date(`${BENCH_TODAY}T12:00:00Z`) };
  const service = await startService(loadConfig(process.env), {
    clock,
    log: pino({ level: 'silent' }),
  });
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    const locks = service.locks.stats();
    // Also shuts the SDK down, which exports the spans still queued.
    await service.stop();
    if (process.connected) await send({ type: 'stopped', locks });
    process.exit(0);
  };
  process.on('message', (message: ParentMessage) => {
    if (message.type === 'stop') void stop();
  });
  // The parent went away without saying stop: do not outlive it.
  process.on('disconnect', () => void stop());
  await send({
    type: 'ready',
    port: service.port,
    telemetry: registeredTelemetry()?.enabled ?? false,
  });
}

main().catch((error: unknown) => {
  console.error('telemetry child failed:', error);
  process.exit(1);
});
