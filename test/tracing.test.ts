import { randomUUID } from 'node:crypto';
import {
  type Client,
  credentials,
  makeGenericClientConstructor,
  Metadata,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import { ROOT_CONTEXT, SpanKind, trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import {
  InMemorySpanExporter,
  SimpleSpanProcessor,
  TracerProvider,
} from '@opentelemetry/sdk-trace';
import { service as healthService } from 'grpc-health-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SwapServiceClient } from '../src/generated/swap/v1/swap';
import {
  KIND_SERVER,
  type OtlpReceiver,
  type ReceivedSpan,
  STATUS_ERROR,
  startOtlpReceiver,
} from './support/otlp-receiver';
import { JwtIssuer } from './support/jwt-issuer';
import { deadlockWith, type Settled } from './support/provoke-deadlock';
import { TEST_REDIS_URL } from './support/redis-url';
import { ScheduleFixture } from './support/schedule-fixture';
import { type ServiceProcess, startServiceProcess } from './support/service-process';
import { connect } from './support/sql-fixtures';
import { fmitSwapPair } from './support/swap-pair';
import { createTestDatabase, type TestDatabase } from './support/test-database';
import { type CallOptions, errorDetails, swapApi, type SwapApi } from './support/test-service';

/**
 * Distributed tracing end to end: the service runs as its own process with
 * the telemetry bootstrap preloaded and exports OTLP/JSON to a receiver in
 * this test. The test is the client: it starts a span of its own and sends
 * its W3C traceparent with each call, then reads back the trace the service
 * exported under that trace id.
 */

// Server spans are named after rpc.method, <package.Service>/<Method> (RPC semantic conventions).
const SERVER_SPAN = 'swap.v1.SwapService/ExecuteSwap';
/** What the RPC conventions before 1.38 called these; no span may carry them any more. */
const DEPRECATED_RPC_ATTRIBUTES = [
  'rpc.system',
  'rpc.service',
  'rpc.grpc.status_code',
  'rpc.response.status_code',
];

/** The server span speaks the current RPC conventions and none of the deprecated names. */
function expectRpcConventions(server: ReceivedSpan, method: string, code: string) {
  expect(server.attributes).toMatchObject({
    'rpc.system.name': 'grpc',
    'rpc.method': `swap.v1.SwapService/${method}`,
    'rpc.status_code': code,
  });
  for (const name of DEPRECATED_RPC_ATTRIBUTES)
    expect(server.attributes, name).not.toHaveProperty([name]);
}
const PG_SCOPE = '@opentelemetry/instrumentation-pg';
const IOREDIS_SCOPE = '@opentelemetry/instrumentation-ioredis';
// The child runs on the real clock, so every week lies years ahead of it.
const W1 = '2031-03-03';
const W2 = '2031-03-17';

let db: TestDatabase;
let receiver: OtlpReceiver;
let service: ServiceProcess | undefined;
let fx: ScheduleFixture;
let client: SwapServiceClient;
let api: SwapApi;
const clients: Client[] = [];
let issuer: JwtIssuer;
/** The test's calls prove they come from `tracing-test` with this bearer token. */
let token: string;

// The caller's side of the trace: a tracer of the test's own, never registered globally.
const clientSpans = new InMemorySpanExporter();
const tracerProvider = new TracerProvider({
  spanProcessors: [new SimpleSpanProcessor({ exporter: clientSpans })],
});
const tracer = tracerProvider.getTracer('tracing-test');
const propagator = new W3CTraceContextPropagator();

beforeAll(async () => {
  db = await createTestDatabase();
  receiver = await startOtlpReceiver();
  issuer = await JwtIssuer.start();
  token = await issuer.token('tracing-test', [], { exp: Math.floor(Date.now() / 1000) + 3600 });
  service = await startServiceProcess({
    ...issuer.env(),
    DATABASE_URL: db.url,
    REDIS_URL: TEST_REDIS_URL,
    LOCK_KEY_PREFIX: `tr${db.name.slice(-10)}`,
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_BSP_SCHEDULE_DELAY: '50',
    // No Prometheus endpoint here: this file is about traces (metrics.test.ts scrapes).
    METRICS_PORT: '0',
  });
  fx = await ScheduleFixture.connect(db.url);
  client = new SwapServiceClient(`127.0.0.1:${service.port}`, credentials.createInsecure());
  clients.push(client);
  api = swapApi(client);
});

afterAll(async () => {
  for (const c of clients) c.close();
  // The child flushes its last spans on SIGTERM, so it stops before the receiver.
  await service?.stop();
  await receiver?.close();
  await issuer?.close();
  await fx?.close();
  await db?.drop();
  await tracerProvider.shutdown();
});

/** A call made inside a client span whose traceparent travels in the gRPC metadata. */
interface TracedCall<T> {
  traceId: string;
  clientSpanId: string;
  result: Settled<T>;
}

async function traced<T>(
  name: string,
  call: (options: CallOptions) => Promise<T>,
): Promise<TracedCall<T>> {
  const span = tracer.startSpan(name, { kind: SpanKind.CLIENT });
  const metadata = new Metadata();
  metadata.set('authorization', `Bearer ${token}`);
  propagator.inject(trace.setSpan(ROOT_CONTEXT, span), metadata, {
    set: (carrier: Metadata, key, value) => carrier.set(key, value),
  });
  const { traceId, spanId } = span.spanContext();
  try {
    const value = await call({ metadata, deadline: new Date(Date.now() + 30_000) });
    return { traceId, clientSpanId: spanId, result: { ok: true, value } };
  } catch (error) {
    return { traceId, clientSpanId: spanId, result: { ok: false, error } };
  } finally {
    span.end();
  }
}

/** The trace ids of the audit rows of a request. */
async function auditTraceIds(requestId: string): Promise<string[]> {
  const { rows } = await fx.db.query<{ trace_id: string }>(
    'select trace_id from audit_event where request_id = $1 order by id',
    [requestId],
  );
  return rows.map((r) => r.trace_id);
}

/** `<span> <attribute>` of every span or event attribute in a trace whose value matches. */
function attributesOfTrace(traceId: string, matches: (value: string) => boolean): string[] {
  return receiver
    .trace(traceId)
    .flatMap((s) =>
      [...Object.entries(s.attributes), ...s.events.flatMap((e) => Object.entries(e.attributes))]
        .filter(([, value]) => matches(String(value)))
        .map(([key]) => `${s.name} ${key}`),
    );
}

function codeOf(result: Settled<unknown>): string {
  if (result.ok) return 'OK';
  const error = result.error as ServiceError;
  return `${status[error.code] ?? String(error.code)}: ${error.details}`;
}

/**
 * Two faculty, each holding an FMIT week, with names of their own (to look
 * for in span attributes), and what an ExecuteSwap between them needs.
 */
async function swapPair(label: string) {
  const names: [string, string] = [
    `Dr Source ${label} ${randomUUID().slice(0, 6)}`,
    `Dr Target ${label} ${randomUUID().slice(0, 6)}`,
  ];
  const pair = await fmitSwapPair(fx, { sourceWeek: W1, targetWeek: W2, reason: 'tracing', names });
  return { ...pair, names };
}

function byId(spans: ReceivedSpan[]): Map<string, ReceivedSpan> {
  return new Map(spans.map((s) => [s.spanId, s]));
}

/** The span's ancestors in the trace, nearest first. */
function ancestorsOf(span: ReceivedSpan, spans: ReceivedSpan[]): ReceivedSpan[] {
  const index = byId(spans);
  const chain: ReceivedSpan[] = [];
  for (let p = index.get(span.parentSpanId); p; p = index.get(p.parentSpanId)) chain.push(p);
  return chain;
}

function only(spans: ReceivedSpan[], name: string): ReceivedSpan {
  const found = spans.filter((s) => s.name === name);
  expect(
    found.map((s) => s.name),
    `exactly one ${name} span`,
  ).toEqual([name]);
  return found[0]!;
}

interface HealthClient extends Client {
  check(
    request: { service: string },
    metadata: Metadata,
    options: { deadline: Date },
    callback: (error: ServiceError | null, response: { status: string }) => void,
  ): void;
}

const serverSpanArrived = (spans: ReceivedSpan[]) =>
  spans.some((s) => s.name === SERVER_SPAN && s.kind === KIND_SERVER);

describe('one trace per call, continued from the caller', () => {
  let first:
    { call: TracedCall<unknown>; requestId: string; swapId: string; names: string[] } | undefined;

  it('nests server, business, lock, transaction and SQL spans under the client span', async () => {
    const pair = await swapPair('happy');
    const requestId = randomUUID();
    const call = await traced('client ExecuteSwap', (options) =>
      api.executeSwap(
        { ...pair.request(requestId), reason: `covering ${pair.names[0]} at a conference` },
        options,
      ),
    );
    expect(codeOf(call.result)).toBe('OK');
    const swapId = call.result.ok ? call.result.value.swap!.id : '';
    first = { call, requestId, swapId, names: pair.names };

    const spans = await receiver.waitForTrace(call.traceId, 'the ExecuteSwap trace', (found) =>
      serverSpanArrived(found),
    );
    // The caller's own span is the root; the service only continued its trace.
    const [clientSpan] = clientSpans
      .getFinishedSpans()
      .filter((s) => s.name === 'client ExecuteSwap');
    expect(clientSpan?.spanContext().traceId).toBe(call.traceId);
    expect(spans.every((s) => s.traceId === call.traceId)).toBe(true);
    expect(spans.every((s) => s.service === 'swap-service')).toBe(true);

    const server = only(spans, SERVER_SPAN);
    expect(server.kind).toBe(KIND_SERVER);
    expect(server.parentSpanId).toBe(call.clientSpanId);
    expectRpcConventions(server, 'ExecuteSwap', 'OK');
    expect(server.attributes).not.toHaveProperty(['error.type']);
    for (const span of spans) {
      expect(
        Object.keys(span.attributes).filter((k) => k.startsWith('db.transaction.')),
        span.name,
      ).toEqual([]);
    }

    const business = only(spans, 'swap.execute');
    expect(business.parentSpanId).toBe(server.spanId);
    expect(business.attributes).toMatchObject({
      'swap.source_faculty_id': pair.source,
      'swap.source_week': W1,
      'swap.target_faculty_id': pair.target,
      'swap.target_week': W2,
      'swap.id': swapId,
      'app.request_id': requestId,
    });

    const lock = only(spans, 'schedule.lock');
    expect(lock.parentSpanId).toBe(business.spanId);
    expect(lock.attributes).toMatchObject({
      // A one-to-one swap locks four faculty weeks: each person's week given and received.
      'lock.keys': 4,
      'lock.backend': 'redis',
      'lock.outcome': 'acquired',
    });
    expect(lock.attributes['lock.wait_ms']).toBeTypeOf('number');
    expect(lock.attributes['lock.fencing_token']).toMatch(/^\d+$/);

    const attempt = only(spans, 'db.transaction');
    expect(attempt.parentSpanId).toBe(lock.spanId);
    expect(attempt.attributes).toMatchObject({
      'swap.tx.attempt': 1,
      'swap.tx.isolation_level': 'read committed',
      'swap.tx.outcome': 'committed',
    });

    const queries = spans.filter((s) => s.scope === PG_SCOPE);
    for (const query of queries) {
      expect(query.attributes['db.system'] ?? query.attributes['db.system.name']).toBe(
        'postgresql',
      );
    }
    // The transaction's statements, START TRANSACTION (MikroORM 7's BEGIN) to
    // COMMIT, run inside the attempt; the idempotency lookup before the locks is
    // the only SQL outside it.
    const statements = queries.filter((q) =>
      ancestorsOf(q, spans).some((a) => a.spanId === lock.spanId),
    );
    expect(statements.length).toBeGreaterThan(2);
    expect(statements.filter((q) => q.parentSpanId !== attempt.spanId)).toEqual([]);
    expect(statements.map((q) => q.name.split(' ')[0])).toEqual(
      expect.arrayContaining(['pg.query:START', 'pg.query:COMMIT']),
    );

    const redisCommands = spans.filter((s) => s.scope === IOREDIS_SCOPE);
    expect(redisCommands.length).toBeGreaterThan(0);
    expect(
      redisCommands.every(
        (s) => s.attributes['db.system'] === 'redis' || s.attributes['db.system.name'] === 'redis',
      ),
    ).toBe(true);
    // Acquiring and releasing the lease are Redis commands under the lock span.
    expect(
      redisCommands.filter((s) => ancestorsOf(s, spans).some((a) => a.spanId === lock.spanId))
        .length,
    ).toBeGreaterThanOrEqual(2);

    // The call's audit row, written in its transaction, carries its trace.
    expect(await auditTraceIds(requestId)).toEqual([call.traceId]);

    // The business attributes are ids, never names.
    const businessValues = Object.values(business.attributes).map(String);
    for (const name of pair.names) {
      expect(businessValues.filter((v) => v.includes(name))).toEqual([]);
    }
  });

  it('keeps person names out of every span, SQL text included', () => {
    expect(first, 'the first test made the call').toBeDefined();
    // The caller's free-text reason names a person, as reasons do.
    const leaks = attributesOfTrace(first!.call.traceId, (value) =>
      first!.names.some((name) => value.includes(name)),
    );
    expect(leaks).toEqual([]);
  });

  it('keeps the bearer token out of every span and every log line', () => {
    expect(first, 'the first test made the call').toBeDefined();
    expect(attributesOfTrace(first!.call.traceId, (value) => value.includes(token))).toEqual([]);
    expect(service!.logs.filter((line) => JSON.stringify(line).includes(token))).toEqual([]);
    expect(service!.stderr()).not.toContain(token);
  });

  it('writes the trace id into the call’s log line', async () => {
    expect(first, 'the first test made the call').toBeDefined();
    const { call, requestId } = first!;
    const line = await waitForLog(
      (l) => l.msg === 'call' && l.method === 'ExecuteSwap' && l.trace_id === call.traceId,
    );
    expect(line).toMatchObject({
      method: 'ExecuteSwap',
      status: 'OK',
      request_id: requestId,
      principal: 'tracing-test',
    });
    expect(line.duration_ms).toBeTypeOf('number');
    expect(line.span_id).toMatch(/^[0-9a-f]{16}$/);
    // Written when the call was answered, while its server span was active.
    expect(line.span_id).toBe(only(receiver.trace(call.traceId), SERVER_SPAN).spanId);
  });

  it('makes no spans for health checks', async () => {
    const HealthClient = makeGenericClientConstructor(healthService, 'Health') as unknown as new (
      address: string,
      creds: ReturnType<typeof credentials.createInsecure>,
    ) => HealthClient;
    const health = new HealthClient(`127.0.0.1:${service!.port}`, credentials.createInsecure());
    clients.push(health);
    const check = (options: CallOptions) =>
      new Promise<string>((resolve, reject) => {
        health.check(
          { service: 'swap.v1.SwapService' },
          options.metadata!,
          { deadline: options.deadline! },
          (error, response) => (error ? reject(error) : resolve(response.status)),
        );
      });
    const checks: TracedCall<string>[] = [];
    for (let i = 0; i < 3; i++) checks.push(await traced('client Check', check));
    expect(checks.map((c) => (c.result.ok ? c.result.value : codeOf(c.result)))).toEqual([
      'SERVING',
      'SERVING',
      'SERVING',
    ]);

    // A traced call after the checks: once its spans are in, any of theirs would be too.
    const pair = await swapPair('after-health');
    const validate = await traced('client ValidateSwap', (options) =>
      api.validateSwap(pair.request(), options),
    );
    expect(codeOf(validate.result)).toBe('OK');
    await receiver.waitForTrace(validate.traceId, 'the ValidateSwap trace', (found) =>
      found.some((s) => s.name === 'swap.v1.SwapService/ValidateSwap'),
    );
    for (const c of checks) expect(receiver.trace(c.traceId)).toEqual([]);
    expect(receiver.spans.filter((s) => s.name.includes('grpc.health.v1'))).toEqual([]);
  });
});

describe('retries and failures in the trace', () => {
  it('shows a deadlock as two attempts under one lock span, with a 40P01 retry event', async () => {
    let outcome: { call: TracedCall<unknown>; victim: 'service' | 'test' } | undefined;
    // PostgreSQL aborts whichever side runs its deadlock check first; that is
    // the swap, which waited first, unless the machine stalled in between.
    for (let round = 0; round < 3 && outcome?.victim !== 'service'; round++) {
      const pair = await swapPair(`deadlock-${round}`);
      await ensureFacultyWeek(pair.source, W1);
      let call: TracedCall<unknown> | undefined;
      const { victim } = await deadlockWith({
        url: db.url,
        database: db.name,
        assignmentId: pair.sourceAssignments[0]!,
        facultyWeek: { personId: pair.source, week: W1 },
        call: async () => {
          call = await traced('client ExecuteSwap (deadlock)', (options) =>
            api.executeSwap(pair.request(), options),
          );
          return call;
        },
      });
      outcome = { call: call!, victim };
    }
    expect(outcome?.victim, 'the swap was chosen as the deadlock victim').toBe('service');
    const { call } = outcome!;
    expect(codeOf(call.result)).toBe('OK');

    const spans = await receiver.waitForTrace(call.traceId, 'the deadlocked trace', (found) =>
      serverSpanArrived(found),
    );
    const lock = only(spans, 'schedule.lock');
    const attempts = spans
      .filter((s) => s.name === 'db.transaction')
      .sort(
        (a, b) => Number(a.attributes['swap.tx.attempt']) - Number(b.attributes['swap.tx.attempt']),
      );
    expect(attempts.map((a) => a.parentSpanId)).toEqual([lock.spanId, lock.spanId]);
    const [deadlocked, retried] = attempts;
    expect(deadlocked!.attributes).toMatchObject({
      'swap.tx.attempt': 1,
      'swap.tx.outcome': 'retry',
      'db.response.status_code': '40P01',
    });
    expect(deadlocked!.status.code).not.toBe(STATUS_ERROR);
    expect(deadlocked!.events).toEqual([
      {
        name: 'transaction.retry',
        attributes: {
          'swap.tx.retry_reason': 'deadlock_detected',
          'db.response.status_code': '40P01',
        },
      },
    ]);
    expect(retried!.attributes).toMatchObject({
      'swap.tx.attempt': 2,
      'swap.tx.outcome': 'committed',
    });
    // Only the statement PostgreSQL aborted is an error; the attempts and the call are not.
    const failed = spans.filter((s) => s.status.code === STATUS_ERROR);
    expect(failed.map((s) => [s.scope, s.parentSpanId])).toEqual([[PG_SCOPE, deadlocked!.spanId]]);
  });

  it('does not mark a rejected swap (FAILED_PRECONDITION) as an error anywhere', async () => {
    const pair = await swapPair('rejected');
    const idle = await fx.faculty('core');
    const requestId = randomUUID();
    const call = await traced('client ExecuteSwap (rejected)', (options) =>
      // The idle faculty holds nothing in W1: NO_ASSIGNMENTS.
      api.executeSwap({ ...pair.request(requestId), sourceFacultyId: idle }, options),
    );
    expect(call.result.ok).toBe(false);
    const error = (call.result as { error: ServiceError }).error;
    expect(error.code).toBe(status.FAILED_PRECONDITION);
    expect(errorDetails(error).violations).toContain('NO_ASSIGNMENTS');

    const spans = await receiver.waitForTrace(call.traceId, 'the rejected trace', (found) =>
      serverSpanArrived(found),
    );
    const server = only(spans, SERVER_SPAN);
    expectRpcConventions(server, 'ExecuteSwap', 'FAILED_PRECONDITION');
    // An answer, not an error: no error.type.
    expect(server.attributes).not.toHaveProperty(['error.type']);
    expect(only(spans, 'swap.execute').attributes['app.error.reason']).toBe('NO_ASSIGNMENTS');
    expect(spans.filter((s) => s.status.code === STATUS_ERROR).map((s) => s.name)).toEqual([]);
    // The refusal's audit row, written after the answer was decided, is in the call's trace too.
    expect(await auditTraceIds(requestId)).toEqual([call.traceId]);
  });

  it('marks an INTERNAL error on the server span', async () => {
    const pair = await swapPair('broken');
    const admin = await connect(db.url);
    let call: TracedCall<unknown>;
    try {
      // A bug's stand-in: the insert of the swap record names a column that is gone.
      await admin.query('alter table swap_record rename column reason to reason_gone');
      call = await traced('client ExecuteSwap (broken)', (options) =>
        api.executeSwap(pair.request(), options),
      );
    } finally {
      await admin.query('alter table swap_record rename column reason_gone to reason');
      await admin.end();
    }
    expect(codeOf(call.result)).toMatch(/^INTERNAL/);

    const spans = await receiver.waitForTrace(call.traceId, 'the failed trace', (found) =>
      serverSpanArrived(found),
    );
    const server = only(spans, SERVER_SPAN);
    expectRpcConventions(server, 'ExecuteSwap', 'INTERNAL');
    expect(server.attributes['error.type']).toBe('INTERNAL');
    expect(server.status.code).toBe(STATUS_ERROR);
    expect(only(spans, 'swap.execute').status.code).toBe(STATUS_ERROR);
    // The swap's attempt; the refusal's audit row is a transaction of its own, under the server span.
    const inSwap = spans.filter((s) =>
      ancestorsOf(s, spans).some((a) => a.name === 'swap.execute'),
    );
    const attempt = only(inSwap, 'db.transaction');
    expect(
      spans.filter((s) => s.name === 'db.transaction' && s.parentSpanId === server.spanId),
    ).toHaveLength(1);
    expect(attempt.attributes['swap.tx.outcome']).toBe('rolled_back');
    expect(attempt.attributes['db.response.status_code']).toBe('42703');
    expect(attempt.status.code).toBe(STATUS_ERROR);

    const line = await waitForLog(
      (l) => l.msg === 'call' && l.method === 'ExecuteSwap' && l.trace_id === call.traceId,
    );
    expect(line.status).toBe('INTERNAL');
  });

  it('exported everything as OTLP/JSON', () => {
    expect(receiver.refused).toEqual([]);
    expect(receiver.requests.get('/v1/traces') ?? 0).toBeGreaterThan(0);
  });
});

/** The faculty-week lock row, created ahead so another session can lock it too. */
async function ensureFacultyWeek(personId: string, week: string): Promise<void> {
  await fx.db.query(
    `insert into faculty_week (id, person_id, week_start) values ($1, $2, $3)
     on conflict (person_id, week_start) do nothing`,
    [randomUUID(), personId, week],
  );
}

/** Polls (bounded) for a log line of the child. */
async function waitForLog(
  match: (line: ServiceProcess['logs'][number]) => boolean,
): Promise<ServiceProcess['logs'][number]> {
  for (let i = 0; i < 200; i++) {
    const line = service!.logs.find(match);
    if (line) return line;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('gave up waiting for the log line');
}
