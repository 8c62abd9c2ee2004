import http2 from 'node:http2';
import {
  connectivityState,
  credentials,
  type ServiceError,
  setLogger,
  status,
} from '@grpc/grpc-js';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PingStrikes } from '../src/grpc/ping-policy';
import { GetSwapResponse, type ListSwapsRequest } from '../src/generated/swap/v1/swap';
import { RetryInfo } from '../src/generated/google/rpc/error_details';
import { Status } from '../src/generated/google/rpc/status';
import { failure } from './support/grpc-outcomes';
import { checkHealth, freshHealthClient } from './support/health-client';
import type { ScheduleFixture } from './support/schedule-fixture';
import { connect, waitFor } from './support/sql-fixtures';
import { fmitSwapPair } from './support/swap-pair';
import {
  errorDetails,
  startTestService,
  swapClientOf,
  type TestService,
  useTestService,
} from './support/test-service';

/**
 * What one client connection may ask of the server, each limit at its default
 * and as configured: message sizes, concurrent calls, idleness and pings.
 * Everything goes through real grpc-js clients (or a raw HTTP/2 one where a
 * gRPC client hides what the server announces).
 */

const MiB = 1024 * 1024;
/** ListSwaps for nobody: it reads swap_record, and its answer stays small whatever the table holds. */
const NOBODY: Partial<ListSwapsRequest> = { facultyId: '00000000-0000-4000-8000-000000000000' };

/** A ListSwaps request whose encoding is about `bytes` long (the page token carries the bulk). */
function listSwapsOfSize(bytes: number): Partial<ListSwapsRequest> {
  return { pageToken: 'x'.repeat(bytes) };
}

/** The SETTINGS a server announces to a new HTTP/2 connection. */
async function announcedSettings(port: number): Promise<http2.Settings> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  try {
    return await new Promise((resolve, reject) => {
      session.once('remoteSettings', resolve);
      session.once('error', reject);
    });
  } finally {
    session.destroy();
  }
}

/**
 * Starts `count` ListSwaps calls on one connection while the test holds an
 * ACCESS EXCLUSIVE lock on swap_record, so every call the server lets run
 * waits in PostgreSQL; resolves to the most calls seen waiting at once, and
 * checks that every call is answered once the lock is released.
 */
async function mostCallsWaitingAtOnce(
  ts: TestService,
  count: number,
  waitUntil: number,
): Promise<number> {
  const holder: pg.Client = await connect(ts.db.url);
  const observer: pg.Client = await connect(ts.db.url);
  const waiting = async () => {
    const { rows } = await observer.query<{ n: number }>(
      `select count(*)::int as n from pg_locks
        where not granted and locktype = 'relation' and relation = 'swap_record'::regclass`,
    );
    return rows[0]!.n;
  };
  const { client, api } = swapClientOf(ts, credentials.createInsecure());
  try {
    await api.listSwaps(NOBODY); // connected, so all calls share this one connection
    await holder.query('begin');
    await holder.query('lock table swap_record in access exclusive mode');
    const calls = Array.from({ length: count }, () => api.listSwaps(NOBODY));
    let most = 0;
    await waitFor(`${waitUntil} calls waiting`, async () => {
      most = Math.max(most, await waiting());
      return most >= waitUntil;
    });
    // Give calls beyond the limit every chance to show up: keep looking while
    // the server answers calls on another connection.
    const other = swapClientOf(ts, credentials.createInsecure());
    try {
      for (let i = 0; i < 5; i++) {
        // Refused before it reads anything, so the held lock does not stop it.
        await other.api.getSwap({ swapId: 'not-a-uuid' }).catch(() => undefined);
        most = Math.max(most, await waiting());
      }
    } finally {
      other.client.close();
    }
    // Released, the waiting calls finish and the queued ones run in their place.
    await holder.query('rollback');
    const settled = Promise.allSettled(calls);
    let done = false;
    void settled.then(() => (done = true));
    while (!done) most = Math.max(most, await waiting());
    expect((await settled).map((r) => r.status)).toEqual(Array(count).fill('fulfilled'));
    return most;
  } finally {
    client.close();
    await holder.end();
    await observer.end();
  }
}

describe('defaults', () => {
  let ts: TestService;
  useTestService((started) => ({ ts } = started), { TX_TIMEOUT_CEILING_MS: '60000' });

  it('refuses a request larger than 1 MiB with RESOURCE_EXHAUSTED, and reads one below it', async () => {
    const tooLarge = await failure(ts.api.listSwaps(listSwapsOfSize(MiB + 1)));
    expect(tooLarge.code).toBe(status.RESOURCE_EXHAUSTED);
    // Read and judged by the service: a page token it never issued.
    const readAndJudged = await failure(ts.api.listSwaps(listSwapsOfSize(MiB - 64)));
    expect(readAndJudged.code).toBe(status.INVALID_ARGUMENT);
  });

  it('announces at most 100 concurrent streams per connection', async () => {
    expect((await announcedSettings(ts.service.port)).maxConcurrentStreams).toBe(100);
  });

  it('(control) lets more calls than a small limit wait in the database at once', async () => {
    expect(await mostCallsWaitingAtOnce(ts, 8, 8)).toBe(8);
  });
});

describe('GRPC_MAX_* as configured', () => {
  let ts: TestService;
  let fx: ScheduleFixture;
  useTestService((started) => ({ ts, fx } = started), {
    GRPC_MAX_RECEIVE_MESSAGE_BYTES: '4096',
    GRPC_MAX_SEND_MESSAGE_BYTES: '2048',
    GRPC_MAX_CONCURRENT_STREAMS: '3',
    GRPC_MAX_CONNECTION_IDLE_MS: '300',
    TX_TIMEOUT_CEILING_MS: '60000',
  });

  it('GRPC_MAX_RECEIVE_MESSAGE_BYTES: refuses a larger request with RESOURCE_EXHAUSTED', async () => {
    expect((await failure(ts.api.listSwaps(listSwapsOfSize(4097)))).code).toBe(
      status.RESOURCE_EXHAUSTED,
    );
    expect((await failure(ts.api.listSwaps(listSwapsOfSize(4000)))).code).toBe(
      status.INVALID_ARGUMENT,
    );
  });

  it('GRPC_MAX_SEND_MESSAGE_BYTES: answers RESOURCE_EXHAUSTED instead of a larger response', async () => {
    // Executed and read through a service without the limit, on the same database.
    const unlimited = await startTestService({}, { database: ts.db });
    let swapId: string;
    try {
      const pair = await fmitSwapPair(fx, {
        sourceWeek: '2030-02-04',
        targetWeek: '2030-02-18',
        reason: 'a swap whose record is large',
      });
      swapId = (await unlimited.api.executeSwap(pair.request())).swap!.id;
      const response = await unlimited.api.getSwap({ swapId });
      expect(GetSwapResponse.encode(response).finish().length).toBeGreaterThan(2048);
    } finally {
      await unlimited.close();
    }
    expect((await failure(ts.api.getSwap({ swapId }))).code).toBe(status.RESOURCE_EXHAUSTED);
    expect((await ts.api.listSwaps(NOBODY)).swaps).toEqual([]);
  });

  it('GRPC_MAX_CONCURRENT_STREAMS: announces it, and a client queues the calls beyond it', async () => {
    expect((await announcedSettings(ts.service.port)).maxConcurrentStreams).toBe(3);
    expect(await mostCallsWaitingAtOnce(ts, 8, 3)).toBe(3);
  });

  it('GRPC_MAX_CONNECTION_IDLE_MS: closes a connection without calls', async () => {
    const { client, api } = swapClientOf(ts, credentials.createInsecure());
    try {
      await api.listSwaps(NOBODY);
      const channel = client.getChannel();
      expect(channel.getConnectivityState(false)).toBe(connectivityState.READY);
      await new Promise<void>((resolve, reject) => {
        const watch = (state: connectivityState) => {
          if (state === connectivityState.IDLE) return resolve();
          channel.watchConnectivityState(state, Date.now() + 30_000, (error) =>
            error ? reject(error) : watch(channel.getConnectivityState(false)),
          );
        };
        watch(channel.getConnectivityState(false));
      });
    } finally {
      client.close();
    }
  });
});

describe('GRPC_MAX_IN_FLIGHT_CALLS', () => {
  let ts: TestService;
  useTestService((started) => ({ ts } = started), {
    GRPC_MAX_IN_FLIGHT_CALLS: '3',
    TX_TIMEOUT_CEILING_MS: '60000',
  });

  it('sheds calls beyond it with RESOURCE_EXHAUSTED and RetryInfo, before they reach the database', async () => {
    const holder: pg.Client = await connect(ts.db.url);
    const observer: pg.Client = await connect(ts.db.url);
    const waiting = async () => {
      const { rows } = await observer.query<{ n: number }>(
        `select count(*)::int as n from pg_locks
          where not granted and locktype = 'relation' and relation = 'swap_record'::regclass`,
      );
      return rows[0]!.n;
    };
    // Calls from several connections: the bound is the process's, not one connection's.
    const clients = [0, 1, 2].map(() => swapClientOf(ts, credentials.createInsecure()));
    const health = freshHealthClient(ts.address);
    try {
      await Promise.all(clients.map(({ api }) => api.listSwaps(NOBODY)));
      await holder.query('begin');
      await holder.query('lock table swap_record in access exclusive mode');
      const admitted = clients.map(({ api }) => api.listSwaps(NOBODY));
      await waitFor('3 calls waiting in PostgreSQL', async () => (await waiting()) === 3);

      // Answered while the lock is still held: they never queried swap_record.
      const shed = await Promise.all(
        [0, 1, 2, 0, 1, 2].map((i) => failure(clients[i]!.api.listSwaps(NOBODY))),
      );
      for (const error of shed) {
        expect(error.code, error.details).toBe(status.RESOURCE_EXHAUSTED);
        expect(errorDetails(error).reason).toBe('OVERLOADED');
        expect(retryDelayMs(error)).toBeGreaterThan(0);
      }
      expect(await waiting()).toBe(3);
      // Probes are not counted, so a full server still answers them.
      expect(await checkHealth(health, '')).toBe('SERVING');

      await holder.query('rollback');
      expect((await Promise.allSettled(admitted)).map((r) => r.status)).toEqual(
        Array(3).fill('fulfilled'),
      );
      // Their slots are free again.
      await expect(
        Promise.all(clients.map(({ api }) => api.listSwaps(NOBODY))),
      ).resolves.toHaveLength(3);
    } finally {
      for (const { client } of clients) client.close();
      health.close();
      await holder.end();
      await observer.end();
    }
  });
});

/** The RetryInfo delay in a status's details, in ms, or undefined without one. */
function retryDelayMs(error: ServiceError): number | undefined {
  const raw = error.metadata.get('grpc-status-details-bin')[0];
  if (!Buffer.isBuffer(raw)) return undefined;
  const any = Status.decode(raw).details.find((d) => d.typeUrl.endsWith('google.rpc.RetryInfo'));
  if (!any) return undefined;
  const delay = RetryInfo.decode(any.value).retryDelay;
  return delay ? Number(delay.seconds) * 1000 + delay.nanos / 1_000_000 : undefined;
}

describe('keepalive enforcement', () => {
  let ts: TestService;
  useTestService((started) => ({ ts } = started));

  const logged: string[] = [];
  beforeAll(() => {
    // grpc-js reports a GOAWAY too_many_pings at ERROR, which it logs by default.
    setLogger({ error: (...args: unknown[]) => void logged.push(args.join(' ')) });
  });
  // grpc-js's own default.
  afterAll(() => setLogger(console));

  it('sends GOAWAY too_many_pings to a client that pings too often', async () => {
    const { client, api } = swapClientOf(ts, credentials.createInsecure(), {
      'grpc.keepalive_time_ms': 10,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.keepalive_permit_without_calls': 1,
    });
    try {
      // It opens the connection; on a slow machine the GOAWAY may end it
      // first, and grpc-js then fails it RESOURCE_EXHAUSTED (ENHANCE_YOUR_CALM).
      await api.listSwaps({}).catch((error: ServiceError) => {
        if (error.code !== status.RESOURCE_EXHAUSTED) throw error;
      });
      await waitFor('the client to be told it pings too often', () =>
        logged.some((l) => /rejected by server because of excess pings/.test(l)),
      );
      // It may come back, at a gentler pace.
      expect((await api.listSwaps({})).swaps).toEqual([]);
    } finally {
      client.close();
    }
  });
});

describe('GRPC_KEEPALIVE_PERMIT_WITHOUT_CALLS=false', () => {
  let ts: TestService;
  // Pings 100 ms apart keep this interval; only the rule for idle connections can strike them.
  useTestService((started) => ({ ts } = started), { GRPC_KEEPALIVE_MIN_PING_INTERVAL_MS: '50' });

  const logged: string[] = [];
  beforeAll(() => {
    setLogger({ error: (...args: unknown[]) => void logged.push(args.join(' ')) });
  });
  afterAll(() => setLogger(console));

  it('sends GOAWAY too_many_pings to a client that keeps pinging a connection without calls', async () => {
    const { client, api } = swapClientOf(ts, credentials.createInsecure(), {
      'grpc.keepalive_time_ms': 100,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.keepalive_permit_without_calls': 1,
    });
    try {
      await api.listSwaps(NOBODY);
      await waitFor('the idle client to be told it pings too often', () =>
        logged.some((l) => /rejected by server because of excess pings/.test(l)),
      );
    } finally {
      client.close();
    }
  });
});

describe('PingStrikes (the policy, step by step)', () => {
  const policy = { minIntervalMs: 1_000, permitWithoutCalls: false };

  /** Whether each ping, at each time (ms), ends the connection. */
  const verdicts = (strikes: PingStrikes, times: number[], openCalls = 1) =>
    times.map((t) => strikes.ping(t, openCalls));

  it('tolerates two pings too soon and ends the connection at the third', () => {
    expect(verdicts(new PingStrikes(policy), [0, 10, 20, 30])).toEqual([false, false, false, true]);
  });

  it('never strikes pings that keep the interval while calls are open', () => {
    const times = Array.from({ length: 10 }, (_, i) => i * 1_000);
    expect(verdicts(new PingStrikes(policy), times)).not.toContain(true);
  });

  it('forgives earlier strikes once a call is opened', () => {
    const strikes = new PingStrikes(policy);
    verdicts(strikes, [0, 10, 20]);
    strikes.callOpened();
    expect(verdicts(strikes, [30, 40, 50, 60])).toEqual([false, false, false, true]);
  });

  it('strikes pings without open calls, unless they are permitted', () => {
    const hourly = [0, 1, 2, 3].map((h) => h * 3_600_000);
    const permitted = { ...policy, permitWithoutCalls: true };
    expect(verdicts(new PingStrikes(policy), hourly, 0)).toEqual([false, false, false, true]);
    expect(verdicts(new PingStrikes(permitted), hourly, 0)).not.toContain(true);
  });
});
