import { type ChildProcessByStdio, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BreakerStats } from '../src/coordination/circuit-breaker';
import { RetryInfo } from '../src/generated/google/rpc/error_details';
import { Status } from '../src/generated/google/rpc/status';
import { type ExecuteSwapRequest, SwapType } from '../src/generated/swap/v1/swap';
import { type Outcome, outcomeOf, tally } from './support/grpc-outcomes';
import type { ScheduleFixture } from './support/schedule-fixture';
import { freePort } from './support/service-process';
import { waitFor } from './support/sql-fixtures';
import { type TestService, useTestService } from './support/test-service';

/**
 * Redis dies under load and comes back. Each case runs a Redis server of its
 * own as a child process (never the shared one), and a service pointed at it
 * with a small breaker threshold and a short cool-down. What is asserted is
 * what callers were told against what the database holds; every wait is
 * bounded and nothing depends on how long anything took.
 */

const BREAKER_COOLDOWN_MS = 500;
const serviceEnv = (port: number, extra: Record<string, string> = {}) => ({
  REDIS_URL: `redis://127.0.0.1:${port}`,
  BREAKER_FAILURE_THRESHOLD: '3',
  BREAKER_COOLDOWN_MS: String(BREAKER_COOLDOWN_MS),
  ...extra,
});

/** Mondays well after the service's TODAY (2030-01-07), two weeks apart (never back to back). */
const W1 = '2030-03-04';
const W2 = '2030-03-18';

// ---------------------------------------------------------------------------
// Redis servers of our own

type RedisChild = ChildProcessByStdio<null, Readable, Readable>;
const children = new Set<RedisChild>();

afterAll(async () => {
  // Whatever happened in the tests, no Redis of ours outlives the file.
  await Promise.all([...children].map((child) => killChild(child)));
});

/** Starts `redis-server` on `port` in the foreground, without persistence; resolves once it accepts connections. */
async function startRedis(port: number): Promise<RedisChild> {
  const child = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--daemonize',
      'no',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.add(child);
  child.once('exit', () => children.delete(child));
  let output = '';
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`redis-server on ${port} did not start:\n${output}`)),
        10_000,
      );
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        output += chunk;
        if (output.includes('Ready to accept connections')) {
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
    await killChild(child);
    throw error;
  }
  return child;
}

/** SIGKILL, as a crash: Redis gets no chance to close its connections politely. */
async function killChild(child: RedisChild): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  await exited;
}

// ---------------------------------------------------------------------------
// Calls

/** The RetryInfo delay in a status's details, in ms, or undefined without one. */
function retryDelayMs(error: ServiceError): number | undefined {
  const raw = error.metadata.get('grpc-status-details-bin')[0];
  if (!Buffer.isBuffer(raw)) return undefined;
  const any = Status.decode(raw).details.find((d) => d.typeUrl.endsWith('google.rpc.RetryInfo'));
  if (!any) return undefined;
  const delay = RetryInfo.decode(any.value).retryDelay;
  return delay ? Number(delay.seconds) * 1000 + delay.nanos / 1_000_000 : undefined;
}

/** Two faculty who trade their FMIT weeks back and forth; `swapped` says who holds which now. */
interface Pair {
  a: string;
  b: string;
  aBlock: string;
  bBlock: string;
  swapped: boolean;
}

async function makePairs(fx: ScheduleFixture, n: number): Promise<Pair[]> {
  const pairs: Pair[] = [];
  for (let i = 0; i < n; i++) {
    const a = await fx.faculty('core');
    const b = await fx.faculty('core');
    const [aBlock] = await fx.assignWeek(a, W1, { days: [0], halves: ['AM'] });
    const [bBlock] = await fx.assignWeek(b, W2, { days: [0], halves: ['AM'] });
    pairs.push({ a, b, aBlock: aBlock!, bBlock: bBlock!, swapped: false });
  }
  return pairs;
}

/** The swap that is valid for the pair now: whoever holds W1 gives it for W2. */
function nextSwap(pair: Pair): Partial<ExecuteSwapRequest> {
  return {
    sourceFacultyId: pair.a,
    sourceWeek: pair.swapped ? W2 : W1,
    targetFacultyId: pair.b,
    targetWeek: pair.swapped ? W1 : W2,
    swapType: SwapType.SWAP_TYPE_ONE_TO_ONE,
    reason: 'outage load',
    requestId: randomUUID(),
  };
}

async function count(fx: ScheduleFixture, sql: string, params: unknown[] = []): Promise<number> {
  const { rows } = await fx.db.query<{ n: number }>(
    `select count(*)::int as n from (${sql}) x`,
    params,
  );
  return rows[0]!.n;
}

// ---------------------------------------------------------------------------

describe('Redis dies under load, with the advisory-lock fallback', () => {
  const PAIRS = 8;
  /** Only a guard against a runaway loop; the phases below end the load long before. */
  const MAX_CALLS_PER_PAIR = 5_000;

  type Phase = 'redis up' | 'redis down' | 'redis back';
  interface Call {
    pair: Pair;
    request: Partial<ExecuteSwapRequest>;
    startedIn: Phase;
    outcome: Outcome;
  }

  let port: number;
  let redis: RedisChild;
  let ts: TestService;
  let fx: ScheduleFixture;
  const calls: Call[] = [];
  /** The breaker as it was just before Redis came back. */
  let breakerWhileDown: BreakerStats;
  let pairs: Pair[];
  let redisAtRestart = 0;
  let postgresAtOpen = 0;

  beforeAll(async () => {
    port = await freePort();
    redis = await startRedis(port);
  });
  useTestService(
    (started) => ({ ts, fx } = started),
    () => serviceEnv(port),
  );
  beforeAll(async () => {
    pairs = await makePairs(fx, PAIRS);

    let phase: Phase = 'redis up';
    let stop = false;
    // One sequential stream of swaps per pair, all pairs at once: a pair's next
    // swap depends on whether its last one committed, so a failed call that had
    // in fact committed would surface as a FAILED_PRECONDITION on the next one.
    const worker = async (pair: Pair) => {
      for (let i = 0; i < MAX_CALLS_PER_PAIR && !stop; i++) {
        const request = nextSwap(pair);
        const startedIn = phase;
        const outcome = await outcomeOf(ts.api.executeSwap(request));
        calls.push({ pair, request, startedIn, outcome });
        if (outcome.ok) pair.swapped = !pair.swapped;
      }
    };
    const load = Promise.all(pairs.map(worker));
    try {
      const locks = () => ts.service.locks.stats();
      await waitFor('swaps under Redis locks', () => locks().acquired.redis >= 40);

      await killChild(redis);
      phase = 'redis down';
      await waitFor('the breaker to open', () => ts.service.breaker!.stats().transitions.open >= 1);
      postgresAtOpen = locks().acquired.postgres;
      await waitFor(
        'swaps under advisory locks while the breaker is open',
        () => locks().acquired.postgres >= postgresAtOpen + 20,
      );

      breakerWhileDown = ts.service.breaker!.stats();
      await startRedis(port);
      redisAtRestart = locks().acquired.redis;
      phase = 'redis back';
      await waitFor(
        'the breaker to close and Redis locks to be granted again',
        () => ts.service.breaker!.state() === 'closed' && locks().acquired.redis > redisAtRestart,
      );
    } finally {
      stop = true;
      await load;
    }
  });

  it('opens the breaker, falls back to advisory locks, and closes again once Redis is back', () => {
    const breaker = ts.service.breaker!.stats();
    const locks = ts.service.locks.stats();
    expect(breaker.transitions.open).toBeGreaterThanOrEqual(1);
    // Opened while Redis was down, and had not closed by the time it came back.
    expect(breakerWhileDown.transitions.open).toBeGreaterThanOrEqual(1);
    expect(breakerWhileDown.state).not.toBe('closed');
    // Then through half-open (a trial call) to closed, and closed is where it ended.
    expect(breaker.transitions.half_open).toBeGreaterThanOrEqual(1);
    expect(breaker.transitions.closed).toBeGreaterThan(breakerWhileDown.transitions.closed);
    expect(breaker.state).toBe('closed');
    expect(locks.fallbacks).toBeGreaterThan(0);
    expect(locks.acquired.postgres).toBeGreaterThan(postgresAtOpen);
    expect(locks.acquired.redis).toBeGreaterThan(redisAtRestart);
  });

  it('keeps swaps succeeding: only calls in flight when Redis died may fail, and only ABORTED or UNAVAILABLE', () => {
    const outcomes = calls.map((c) => c.outcome);
    expect(tally(outcomes)['OK']).toBeGreaterThan(0);
    for (const phase of ['redis up', 'redis down', 'redis back'] as const) {
      expect(calls.filter((c) => c.startedIn === phase && c.outcome.ok).length).toBeGreaterThan(0);
    }
    const failed = calls.filter((c) => !c.outcome.ok);
    // A call started after Redis was gone never held a Redis lease, so nothing could be lost.
    expect(tally(failed.filter((c) => c.startedIn !== 'redis up').map((c) => c.outcome))).toEqual(
      {},
    );
    for (const { outcome } of failed) {
      expect(outcome.ok ? status.OK : outcome.code).toSatisfy(
        (code) => code === status.ABORTED || code === status.UNAVAILABLE,
      );
    }
  });

  it('holds exactly one swap record and one idempotency key per OK call, and nothing of a failed one', async () => {
    const ok = calls.filter((c) => c.outcome.ok);
    const failed = calls.filter((c) => !c.outcome.ok);
    const okIds = ok.map((c) => (c.outcome.ok ? c.outcome.swap.id : ''));
    expect(new Set(okIds).size).toBe(ok.length);
    expect(await count(fx, 'select 1 from swap_record')).toBe(ok.length);
    expect(await count(fx, 'select 1 from swap_record where id = any($1::uuid[])', [okIds])).toBe(
      ok.length,
    );
    const requestIds = (list: Call[]) => list.map((c) => c.request.requestId);
    expect(
      await count(fx, 'select 1 from idempotency_record where request_id = any($1::uuid[])', [
        requestIds(ok),
      ]),
    ).toBe(ok.length);
    expect(
      await count(fx, 'select 1 from idempotency_record where request_id = any($1::uuid[])', [
        requestIds(failed),
      ]),
    ).toBe(0);
  });

  it('applied no request twice: each pair is where its OK swaps put it, and replays change nothing', async () => {
    for (const pair of pairs) {
      const holders = await fx.db.query<{ id: string; person_id: string }>(
        'select id, person_id from assignment where id = any($1::uuid[])',
        [[pair.aBlock, pair.bBlock]],
      );
      const holderOf = new Map(holders.rows.map((r) => [r.id, r.person_id]));
      expect(holderOf.get(pair.aBlock)).toBe(pair.swapped ? pair.b : pair.a);
      expect(holderOf.get(pair.bBlock)).toBe(pair.swapped ? pair.a : pair.b);
    }

    const ok = calls.filter((c) => c.outcome.ok);
    const records = await count(fx, 'select 1 from swap_record');
    for (let i = 0; i < ok.length; i += 16) {
      const replays = await Promise.all(
        ok.slice(i, i + 16).map(async (c) => ({
          original: c.outcome.ok ? c.outcome.swap.id : '',
          replay: await outcomeOf(ts.api.executeSwap(c.request)),
        })),
      );
      for (const { original, replay } of replays) {
        expect(replay.ok ? replay.swap.id : replay.codeName).toBe(original);
      }
    }
    expect(await count(fx, 'select 1 from swap_record')).toBe(records);
  });

  it('leaves no faculty double-booked', async () => {
    expect((await fx.invariantBreaches()).doubleBooked).toBe(0);
    expect(await count(fx, 'select 1 from assignment')).toBe(2 * PAIRS);
  });
});

describe('Redis dies with LOCK_FALLBACK=fail', () => {
  let ts: TestService;
  let fx: ScheduleFixture;
  let port: number;
  let redis: RedisChild;
  beforeAll(async () => {
    port = await freePort();
    redis = await startRedis(port);
  });
  useTestService(
    (started) => ({ ts, fx } = started),
    () => serviceEnv(port, { LOCK_FALLBACK: 'fail' }),
  );

  it('refuses swaps UNAVAILABLE with LOCK_SERVICE_UNAVAILABLE and a RetryInfo, writing nothing', async () => {
    const [pair] = await makePairs(fx, 1);
    const first = await outcomeOf(ts.api.executeSwap(nextSwap(pair!)));
    expect(first).toMatchObject({ ok: true });
    pair!.swapped = true;
    expect(ts.service.locks.stats().acquired.redis).toBe(1);

    await killChild(redis);
    const before = {
      snapshot: await fx.snapshot(),
      swaps: await count(fx, 'select 1 from swap_record'),
      keys: await count(fx, 'select 1 from idempotency_record'),
    };

    const refused: Outcome[] = [];
    await waitFor('the breaker to open', async () => {
      refused.push(await outcomeOf(ts.api.executeSwap(nextSwap(pair!))));
      return ts.service.breaker!.state() === 'open';
    });
    const rejectedBefore = ts.service.breaker!.stats().rejected;
    const whileOpen = await outcomeOf(ts.api.executeSwap(nextSwap(pair!)));
    refused.push(whileOpen);

    expect(ts.service.breaker!.stats().transitions.open).toBeGreaterThanOrEqual(1);
    expect(ts.service.breaker!.stats().rejected).toBeGreaterThan(rejectedBefore);
    expect(tally(refused)).toEqual({
      'UNAVAILABLE/LOCK_SERVICE_UNAVAILABLE': refused.length,
    });
    expect(whileOpen.ok ? undefined : retryDelayMs(whileOpen.error)).toBe(BREAKER_COOLDOWN_MS);
    for (const o of refused) {
      expect(o.ok ? undefined : retryDelayMs(o.error)).toBe(BREAKER_COOLDOWN_MS);
    }
    const locks = ts.service.locks.stats();
    expect(locks.refusedUnavailable).toBe(refused.length);
    expect(locks.acquired.postgres).toBe(0);
    expect(locks.fallbacks).toBe(0);

    expect(await fx.snapshot()).toEqual(before.snapshot);
    expect(await count(fx, 'select 1 from swap_record')).toBe(before.swaps);
    expect(await count(fx, 'select 1 from idempotency_record')).toBe(before.keys);
  });
});
