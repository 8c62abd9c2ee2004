import { createHash, randomUUID } from 'node:crypto';
import {
  credentials,
  InterceptingCall,
  type Interceptor,
  type Metadata,
  status,
} from '@grpc/grpc-js';
import { Redis } from 'ioredis';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addDays } from '../src/domain/calendar';
import { AuditServiceClient, ChainBreak } from '../src/generated/swap/v1/audit';
import {
  AutoResolveOutcome,
  ConflictType,
  ResolutionStrategy,
  RiskLevel,
} from '../src/generated/swap/v1/conflict';
import { failure } from './support/grpc-outcomes';
import { errorOf, executeSwapAnswer } from './support/replay-aware-calls';
import { ScheduleFixture } from './support/schedule-fixture';
import { ProcessHarness } from './support/process-harness';
import { TEST_REDIS_URL } from './support/redis-url';
import { backendPid, connect, waitFor } from './support/sql-fixtures';
import { fmitSwapPair } from './support/swap-pair';
import { createTestDatabase, type TestDatabase } from './support/test-database';
import {
  type AuditApi,
  auditApi,
  type CallOptions,
  errorDetails,
  startTestService,
  type TestService,
  useTokenAuthenticatedService,
} from './support/test-service';
import type { JwtIssuer } from './support/jwt-issuer';

/**
 * The audit trail: one row for every committed, replayed or refused mutating
 * call, each sealed by a hash chained to the row before it. These tests check
 * what is recorded and when, that the table refuses to change, that tampering
 * is found and named, that concurrent writers on two replicas keep one
 * unbroken chain, and how ListAuditEvents filters and pages.
 */

let ts: TestService;
let fx: ScheduleFixture;
let audit: AuditApi;
let auditClient: AuditServiceClient;
let issuer: JwtIssuer;
let defaultCaller: Metadata | undefined;
/** A call that names no caller authenticates as `tester`. */
const asTesterUnlessNamed: Interceptor = (options, nextCall) =>
  new InterceptingCall(nextCall(options), {
    start: (metadata, listener, next) => {
      if (metadata.get('authorization').length === 0 && defaultCaller)
        metadata.merge(defaultCaller);
      next(metadata, listener);
    },
  });
// Callers prove who they are with tokens from a test identity provider.
useTokenAuthenticatedService(
  (started) => ({ ts, fx, issuer } = started),
  {},
  { clientInterceptors: [asTesterUnlessNamed] },
);
beforeAll(async () => {
  defaultCaller = await issuer.metadataFor('tester');
  auditClient = new AuditServiceClient(
    `127.0.0.1:${ts.service.port}`,
    credentials.createInsecure(),
    { 'grpc.use_local_subchannel_pool': 1, interceptors: [asTesterUnlessNamed] },
  );
  audit = auditApi(auditClient);
});
afterAll(() => auditClient?.close());

/** Mondays past the test clock's short-notice horizon. */
const W1 = '2030-03-04';
const W2 = '2030-03-18';

/** Call options that authenticate as `principal`, with a token of its own. */
async function as(principal: string): Promise<CallOptions> {
  return { metadata: await issuer.metadataFor(principal) };
}

const swapPair = () => fmitSwapPair(fx, { sourceWeek: W1, targetWeek: W2, reason: 'audit' });

// ---------------------------------------------------------------------------
// The rows, as the database holds them, and the chain recomputed from the README's canonical form.

interface AuditRow {
  id: string;
  at: Date;
  principal: string;
  on_behalf_of: string | null;
  peer: string;
  method: string;
  request_id: string | null;
  request_fingerprint: string | null;
  status: string;
  reason: string | null;
  replayed: boolean;
  swap_ids: string[];
  conflict_ids: string[];
  trace_id: string;
  prev_hash: string;
  hash: string;
}

async function auditRows(
  db: pg.Pool | pg.Client,
  where = 'true',
  params: unknown[] = [],
): Promise<AuditRow[]> {
  const { rows } = await db.query<AuditRow>(
    `select id::text as id, at, principal, on_behalf_of, peer, method, request_id,
            request_fingerprint, status, reason, replayed, swap_ids::text[] as swap_ids,
            conflict_ids::text[] as conflict_ids, trace_id, prev_hash, hash
       from audit_event where ${where} order by audit_event.id`,
    params,
  );
  return rows;
}

const rowsOfRequest = (requestId: string, db: pg.Pool | pg.Client = fx.db) =>
  auditRows(db, 'request_id = $1', [requestId]);

const GENESIS = '0'.repeat(64);

/** field(v): 0xFFFFFFFF for null, else the UTF-8 byte length (uint32 big-endian) and the bytes. */
function field(value: string | null): Buffer {
  if (value === null) return Buffer.from('ffffffff', 'hex');
  const bytes = Buffer.from(value, 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

/** A row's hash as the README defines it, computed here without any SQL. */
function expectedHash(row: AuditRow): string {
  const canonical = Buffer.concat(
    [
      row.id,
      String(BigInt(row.at.getTime()) * 1000n),
      row.principal,
      row.on_behalf_of,
      row.peer,
      row.method,
      row.request_id,
      row.request_fingerprint,
      row.status,
      row.reason,
      String(row.replayed),
      row.swap_ids.join(','),
      row.conflict_ids.join(','),
      row.trace_id,
    ].map(field),
  );
  return createHash('sha256')
    .update(Buffer.from(row.prev_hash, 'hex'))
    .update(canonical)
    .digest('hex');
}

/** Every link of the whole chain, checked in the test: each row seals itself and follows the one before. */
async function expectChainHolds(db: pg.Pool | pg.Client): Promise<AuditRow[]> {
  const rows = await auditRows(db);
  let previous = GENESIS;
  for (const row of rows) {
    expect(row.prev_hash, `prev_hash of ${row.id}`).toBe(previous);
    expect(row.hash, `hash of ${row.id}`).toBe(expectedHash(row));
    previous = row.hash;
  }
  const { rows: head } = await db.query<{ last_event_id: string; hash: string }>(
    'select last_event_id::text, hash from audit_chain_head',
  );
  expect(head).toEqual([{ last_event_id: rows.at(-1)?.id ?? '0', hash: previous }]);
  return rows;
}

/** An alert to work on: a faculty member on FMIT in `week` with a TDY in it (LEAVE_FMIT_OVERLAP). */
async function leaveOverlap(week: string): Promise<string> {
  const faculty = await fx.faculty();
  await fx.assignWeek(faculty, week);
  await fx.absence(faculty, addDays(week, 1), addDays(week, 2), 'tdy');
  const { created } = await ts.conflicts.detectConflicts({ weekFrom: week, weekTo: week });
  const alert = created.find((c) => c.facultyId === faculty)!;
  expect(alert.type).toBe(ConflictType.CONFLICT_TYPE_LEAVE_FMIT_OVERLAP);
  return alert.id;
}

// ---------------------------------------------------------------------------

describe('a committed mutation', () => {
  it('ExecuteSwap and RollbackSwap each leave exactly one OK row with the principal and the swap', async () => {
    const pair = await swapPair();
    const executeId = randomUUID();
    const { swap } = await ts.api.executeSwap(pair.request(executeId), await as('alice'));
    const rollbackId = randomUUID();
    await ts.api.rollbackSwap(
      { swapId: swap!.id, reason: 'audit rollback', requestId: rollbackId },
      await as('bob'),
    );

    const { rows: keys } = await fx.db.query<{ request_id: string; fingerprint: string }>(
      'select request_id, fingerprint from idempotency_record where request_id = any($1::uuid[])',
      [[executeId, rollbackId]],
    );
    const fingerprintOf = (id: string) => keys.find((k) => k.request_id === id)!.fingerprint;
    const committed = {
      status: 'OK',
      reason: null,
      replayed: false,
      on_behalf_of: null,
      swap_ids: [swap!.id],
      conflict_ids: [],
      peer: expect.stringContaining('127.0.0.1') as string,
    };
    expect(await rowsOfRequest(executeId)).toEqual([
      expect.objectContaining({
        ...committed,
        method: 'ExecuteSwap',
        principal: 'alice',
        request_fingerprint: fingerprintOf(executeId),
      }),
    ]);
    expect(await rowsOfRequest(rollbackId)).toEqual([
      expect.objectContaining({
        ...committed,
        method: 'RollbackSwap',
        principal: 'bob',
        request_fingerprint: fingerprintOf(rollbackId),
      }),
    ]);
    // The swap itself is filed under both calls, and under nothing else.
    expect((await auditRows(fx.db, '$1 = any(swap_ids)', [swap!.id])).map((r) => r.method)).toEqual(
      ['ExecuteSwap', 'RollbackSwap'],
    );
  });

  it('AcknowledgeConflict, IgnoreConflict, ResolveConflict and each resolution of AutoResolve leave one OK row naming the conflict', async () => {
    const acknowledged = await leaveOverlap('2030-05-06');
    const ignored = await leaveOverlap('2030-05-13');
    const resolved = await leaveOverlap('2030-05-20');
    const autoResolved = await leaveOverlap('2030-05-27');
    // Someone free to take the week over.
    await fx.faculty();

    const ackId = randomUUID();
    await ts.conflicts.acknowledgeConflict(
      { conflictId: acknowledged, notes: 'seen', requestId: ackId },
      await as('triager'),
    );
    const ignoreId = randomUUID();
    await ts.conflicts.ignoreConflict(
      { conflictId: ignored, reason: 'known', requestId: ignoreId },
      await as('triager'),
    );
    const resolveId = randomUUID();
    const resolution = await ts.conflicts.resolveConflict(
      {
        conflictId: resolved,
        strategy: ResolutionStrategy.RESOLUTION_STRATEGY_SWAP_ASSIGNMENTS,
        requestId: resolveId,
      },
      await as('resolver'),
    );
    const { results } = await ts.conflicts.autoResolve(
      { conflictIds: [autoResolved], maxRisk: RiskLevel.RISK_LEVEL_HIGH, requestId: randomUUID() },
      await as('robot'),
    );
    expect(results.map((r) => r.outcome)).toEqual([
      AutoResolveOutcome.AUTO_RESOLVE_OUTCOME_RESOLVED,
    ]);

    const ok = { status: 'OK', reason: null, replayed: false };
    expect(await rowsOfRequest(ackId)).toEqual([
      expect.objectContaining({
        ...ok,
        method: 'AcknowledgeConflict',
        principal: 'triager',
        conflict_ids: [acknowledged],
        swap_ids: [],
      }),
    ]);
    expect(await rowsOfRequest(ignoreId)).toEqual([
      expect.objectContaining({
        ...ok,
        method: 'IgnoreConflict',
        principal: 'triager',
        conflict_ids: [ignored],
        swap_ids: [],
      }),
    ]);
    expect(await rowsOfRequest(resolveId)).toEqual([
      expect.objectContaining({
        ...ok,
        method: 'ResolveConflict',
        principal: 'resolver',
        conflict_ids: [resolved],
        swap_ids: [resolution.swap!.id],
      }),
    ]);
    // Each resolution is its own write, under a request id derived from the call's and the conflict.
    expect(await auditRows(fx.db, '$1 = any(conflict_ids)', [autoResolved])).toEqual([
      expect.objectContaining({
        ...ok,
        method: 'AutoResolve',
        principal: 'robot',
        conflict_ids: [autoResolved],
        swap_ids: [results[0]!.swapId],
      }),
    ]);
  });

  it('a replay gets a row of its own, marked replayed, with what the first call did', async () => {
    const pair = await swapPair();
    const requestId = randomUUID();
    const first = await ts.api.executeSwap(pair.request(requestId), await as('alice'));
    const again = await ts.api.executeSwap(pair.request(requestId), await as('alice'));
    expect(again.swap).toEqual(first.swap);

    const [original, replay] = await rowsOfRequest(requestId);
    expect(original).toMatchObject({ status: 'OK', replayed: false });
    expect(replay).toMatchObject({
      status: 'OK',
      replayed: true,
      method: 'ExecuteSwap',
      principal: 'alice',
      swap_ids: [first.swap!.id],
      request_fingerprint: original!.request_fingerprint,
    });
  });
});

describe('a refused mutating call', () => {
  it('is recorded with the status it answered and its reason, in a transaction of its own', async () => {
    const pair = await swapPair();
    const idle = await fx.faculty();

    const preconditionId = randomUUID();
    const precondition = await failure(
      ts.api.executeSwap(
        { ...pair.request(preconditionId), sourceFacultyId: idle },
        await as('carol'),
      ),
    );
    expect([precondition.code, errorDetails(precondition).reason]).toEqual([
      status.FAILED_PRECONDITION,
      'NO_ASSIGNMENTS',
    ]);

    const reusedId = randomUUID();
    await ts.api.executeSwap(pair.request(reusedId), await as('carol'));
    const reused = await failure(
      ts.api.executeSwap({ ...pair.request(reusedId), reason: 'another' }, await as('carol')),
    );
    expect(errorDetails(reused).reason).toBe('IDEMPOTENCY_KEY_REUSED');

    const malformed = await failure(
      ts.api.rollbackSwap(
        { swapId: randomUUID(), reason: 'x', requestId: 'not-a-uuid' },
        await as('carol'),
      ),
    );
    expect(errorDetails(malformed).reason).toBe('INVALID_ID');
    const missingId = randomUUID();
    const missing = await failure(
      ts.api.rollbackSwap(
        { swapId: randomUUID(), reason: 'x', requestId: missingId },
        await as('carol'),
      ),
    );
    expect(missing.code).toBe(status.NOT_FOUND);
    const autoId = randomUUID();
    const emptyAuto = await failure(
      ts.conflicts.autoResolve(
        { conflictIds: [], maxRisk: RiskLevel.RISK_LEVEL_LOW, requestId: autoId },
        await as('carol'),
      ),
    );
    expect(errorDetails(emptyAuto).reason).toBe('INVALID_SIZE');
    // A read is no mutating call: its refusal is not recorded.
    await failure(ts.api.getSwap({ swapId: randomUUID() }, await as('carol')));

    const refused = {
      principal: 'carol',
      replayed: false,
      request_fingerprint: null,
      swap_ids: [],
      conflict_ids: [],
    };
    expect(await rowsOfRequest(preconditionId)).toEqual([
      expect.objectContaining({
        ...refused,
        method: 'ExecuteSwap',
        status: 'FAILED_PRECONDITION',
        reason: 'NO_ASSIGNMENTS',
      }),
    ]);
    expect(await rowsOfRequest(reusedId)).toEqual([
      expect.objectContaining({ status: 'OK', replayed: false }),
      expect.objectContaining({
        ...refused,
        method: 'ExecuteSwap',
        status: 'INVALID_ARGUMENT',
        reason: 'IDEMPOTENCY_KEY_REUSED',
      }),
    ]);
    // The request id as sent, though it is no UUID.
    expect(await rowsOfRequest('not-a-uuid')).toEqual([
      expect.objectContaining({
        ...refused,
        method: 'RollbackSwap',
        status: 'INVALID_ARGUMENT',
        reason: 'INVALID_ID',
      }),
    ]);
    expect(await rowsOfRequest(missingId)).toEqual([
      expect.objectContaining({ ...refused, status: 'NOT_FOUND', reason: 'SWAP_NOT_FOUND' }),
    ]);
    expect(await rowsOfRequest(autoId)).toEqual([
      expect.objectContaining({
        ...refused,
        method: 'AutoResolve',
        status: 'INVALID_ARGUMENT',
        reason: 'INVALID_SIZE',
      }),
    ]);
    expect(await auditRows(fx.db, `method = 'GetSwap'`)).toEqual([]);
  });

  it('is recorded as ABORTED when another writer holds its locks past LOCK_WAIT_MS', async () => {
    const impatient = await startTestService(
      { ...issuer.env(), REDIS_URL: TEST_REDIS_URL, LOCK_WAIT_MS: '100' },
      { database: ts.db, clientInterceptors: [asTesterUnlessNamed] },
    );
    const redis = new Redis(TEST_REDIS_URL);
    try {
      const pair = await swapPair();
      // Another writer's grant on one of the swap's faculty weeks.
      const key = `{${impatient.lockKeyPrefix}}:lock:fw:${pair.source}:${W1}`;
      await redis.set(key, 'another-writer', 'PX', 60_000);
      const requestId = randomUUID();
      const aborted = await failure(
        impatient.api.executeSwap(pair.request(requestId), await as('dave')),
      );
      expect([aborted.code, errorDetails(aborted).reason]).toEqual([
        status.ABORTED,
        'LOCK_TIMEOUT',
      ]);
      expect(await rowsOfRequest(requestId)).toEqual([
        expect.objectContaining({
          principal: 'dave',
          method: 'ExecuteSwap',
          status: 'ABORTED',
          reason: 'LOCK_TIMEOUT',
          swap_ids: [],
        }),
      ]);
      await redis.del(key);
    } finally {
      redis.disconnect();
      await impatient.close();
    }
  });
});

describe('the audit_event table', () => {
  it('refuses UPDATE, DELETE and TRUNCATE, and the chain head cannot be deleted', async () => {
    const pair = await swapPair();
    const requestId = randomUUID();
    await ts.api.executeSwap(pair.request(requestId), await as('alice'));
    const [row] = await rowsOfRequest(requestId);

    for (const statement of [
      `update audit_event set principal = 'mallory' where id = ${row!.id}`,
      `update audit_event set hash = hash where id = ${row!.id}`,
      `delete from audit_event where id = ${row!.id}`,
      'truncate audit_event',
      'delete from audit_chain_head',
      'truncate audit_chain_head',
    ]) {
      await expect(fx.db.query(statement), statement).rejects.toThrow(/is append-only/);
    }
    expect(await rowsOfRequest(requestId)).toEqual([row]);
  });
});

describe('VerifyAuditChain', () => {
  const withTriggerOff = async (statement: string, params: unknown[] = []) => {
    const admin = await connect(ts.db.url);
    try {
      await admin.query('begin');
      await admin.query('alter table audit_event disable trigger audit_event_append_only');
      await admin.query(statement, params);
      await admin.query('alter table audit_event enable trigger audit_event_append_only');
      await admin.query('commit');
    } finally {
      await admin.end();
    }
  };
  const reinsert = (row: AuditRow) =>
    fx.db.query(
      `insert into audit_event overriding system value
         select * from json_populate_record(null::audit_event, $1::json)`,
      [JSON.stringify(row)],
    );

  it('finds the chain intact, as recomputed here from the canonical form', async () => {
    // At least three rows, so there is a middle one to tamper with below.
    for (let i = 0; i < 3; i++) await ts.api.executeSwap((await swapPair()).request());
    const rows = await expectChainHolds(fx.db);
    const verdict = await audit.verifyAuditChain({});
    expect(verdict).toEqual({
      intact: true,
      eventsChecked: String(rows.length),
      firstBrokenLink: undefined,
      headEventId: rows.at(-1)!.id,
      headHash: rows.at(-1)!.hash,
    });
  });

  it('names an edited row, and finds the chain whole again once it is put back', async () => {
    const rows = await auditRows(fx.db);
    const [before, target] = [rows.at(-3)!, rows.at(-2)!];
    await withTriggerOff(`update audit_event set principal = 'mallory' where id = $1`, [target.id]);

    const { intact, firstBrokenLink } = await audit.verifyAuditChain({});
    expect(intact).toBe(false);
    expect(firstBrokenLink).toEqual({
      kind: ChainBreak.CHAIN_BREAK_ROW_HASH,
      eventId: target.id,
      previousEventId: before.id,
      expectedHash: expectedHash({ ...target, principal: 'mallory' }),
      foundHash: target.hash,
    });

    await withTriggerOff(`update audit_event set principal = $2 where id = $1`, [
      target.id,
      target.principal,
    ]);
    expect((await audit.verifyAuditChain({})).intact).toBe(true);
  });

  it('names the row after a deleted one, and the last row when the end is cut off', async () => {
    const rows = await auditRows(fx.db);
    const [before, deleted, after] = [rows.at(-3)!, rows.at(-2)!, rows.at(-1)!];

    await withTriggerOff('delete from audit_event where id = $1', [deleted.id]);
    expect(await audit.verifyAuditChain({})).toMatchObject({
      intact: false,
      eventsChecked: String(rows.length - 1),
      firstBrokenLink: {
        kind: ChainBreak.CHAIN_BREAK_PREVIOUS_HASH,
        eventId: after.id,
        previousEventId: before.id,
        expectedHash: before.hash,
        foundHash: deleted.hash,
      },
    });
    await reinsert(deleted);
    expect((await audit.verifyAuditChain({})).intact).toBe(true);

    // The last row has no successor to betray it; the head does.
    await withTriggerOff('delete from audit_event where id = $1', [after.id]);
    expect((await audit.verifyAuditChain({})).firstBrokenLink).toEqual({
      kind: ChainBreak.CHAIN_BREAK_HEAD,
      eventId: after.id,
      previousEventId: deleted.id,
      expectedHash: after.hash,
      foundHash: deleted.hash,
    });
    await reinsert(after);
    expect((await audit.verifyAuditChain({})).intact).toBe(true);
    await expectChainHolds(fx.db);
  });
});

describe('concurrent mutations on two replicas, one with Redis and one without', () => {
  let other: TestService;
  beforeAll(async () => {
    other = await startTestService(
      { ...issuer.env(), REDIS_URL: '' },
      { database: ts.db, clientInterceptors: [asTesterUnlessNamed] },
    );
  });
  afterAll(() => other?.close());

  it('make one unbroken chain with one row per call', async () => {
    {
      const pairs = await Promise.all(Array.from({ length: 40 }, () => swapPair()));
      const idle = await fx.faculty();
      const startedAt = (await auditRows(fx.db)).length;
      const calls = pairs.map((pair, i) => {
        const requestId = randomUUID();
        const service = i % 2 === 0 ? ts : other;
        // Every fifth is refused (NO_ASSIGNMENTS), so refusals interleave with commits.
        const request =
          i % 5 === 4
            ? { ...pair.request(requestId), sourceFacultyId: idle }
            : pair.request(requestId);
        return { requestId, refused: i % 5 === 4, answer: service.api.executeSwap(request) };
      });
      const settled = await Promise.allSettled(calls.map((c) => c.answer));
      expect(settled.map((s) => s.status)).toEqual(
        calls.map((c) => (c.refused ? 'rejected' : 'fulfilled')),
      );

      const rows = await expectChainHolds(fx.db);
      expect(rows.length - startedAt).toBe(calls.length);
      for (const [i, call] of calls.entries()) {
        const outcome = settled[i]!;
        expect(await rowsOfRequest(call.requestId)).toEqual([
          expect.objectContaining(
            outcome.status === 'fulfilled'
              ? { status: 'OK', swap_ids: [outcome.value.swap!.id] }
              : { status: 'FAILED_PRECONDITION', reason: 'NO_ASSIGNMENTS' },
          ),
        ]);
      }
      // Appended one at a time: ids and times both follow the chain.
      for (let i = 1; i < rows.length; i++) {
        expect(BigInt(rows[i]!.id) > BigInt(rows[i - 1]!.id)).toBe(true);
        expect(rows[i]!.at.getTime()).toBeGreaterThanOrEqual(rows[i - 1]!.at.getTime());
      }
      expect(await audit.verifyAuditChain({})).toMatchObject({
        intact: true,
        eventsChecked: String(rows.length),
      });
    }
  });

  it.each(['commit', 'rollback'])(
    'queued behind a writer that holds the head, link to what committed once it ends (%s)',
    async (end) => {
      const pairs = await Promise.all(Array.from({ length: 10 }, () => swapPair()));
      const holder = await connect(ts.db.url);
      const observer = await connect(ts.db.url);
      try {
        // Another replica's transaction that has appended its row and not yet committed.
        await holder.query('begin');
        const { rows: held } = await holder.query<{ id: string }>(
          `select audit_append('holder', null, 'test', 'Held', null, null, 'OK', null, false, '{}', '{}', '')::text as id`,
        );
        const calls = pairs.map((pair, i) => (i % 2 ? ts : other).api.executeSwap(pair.request()));
        await waitFor('every swap to queue for the head', async () => {
          const { rows } = await observer.query<{ n: number }>(
            `select count(*)::int as n from pg_stat_activity
              where datname = $1 and wait_event_type = 'Lock'`,
            [ts.db.name],
          );
          return rows[0]!.n === pairs.length;
        });
        await holder.query(end);
        const swaps = await Promise.all(calls);

        const rows = await expectChainHolds(fx.db);
        const heldRow = rows.filter((r) => r.id === held[0]!.id);
        expect(heldRow).toHaveLength(end === 'commit' ? 1 : 0);
        // The queue's rows come last, after the held one if it committed.
        const tail = rows.slice(-pairs.length - (end === 'commit' ? 1 : 0));
        expect(tail.map((r) => r.method)).toEqual([
          ...(end === 'commit' ? ['Held'] : []),
          ...pairs.map(() => 'ExecuteSwap'),
        ]);
        expect(tail.flatMap((r) => r.swap_ids).sort()).toEqual(swaps.map((s) => s.swap!.id).sort());
      } finally {
        await holder.query('rollback').catch(() => undefined);
        await holder.end();
        await observer.end();
      }
    },
  );
});

describe('ListAuditEvents', () => {
  const principal = `lister-${randomUUID().slice(0, 8)}`;
  let swapIds: string[] = [];
  let mine: AuditRow[] = [];

  beforeAll(async () => {
    swapIds = [];
    for (let i = 0; i < 5; i++) {
      const { swap } = await ts.api.executeSwap((await swapPair()).request(), await as(principal));
      swapIds.push(swap!.id);
    }
    await ts.api.rollbackSwap(
      { swapId: swapIds[1]!, reason: 'listing', requestId: randomUUID() },
      await as(principal),
    );
    await failure(
      ts.api.rollbackSwap(
        { swapId: swapIds[1]!, reason: 'again', requestId: randomUUID() },
        await as(principal),
      ),
    );
    mine = (await auditRows(fx.db, 'principal = $1', [principal])).reverse();
    expect(mine).toHaveLength(7);
  });

  const ids = (events: { id: string }[]) => events.map((e) => e.id);

  it('filters by principal, method, swap and time range, newest first', async () => {
    const byPrincipal = await audit.listAuditEvents({ principal });
    expect(ids(byPrincipal.events)).toEqual(ids(mine));
    expect(byPrincipal.nextPageToken).toBe('');
    const newest = mine[0]!;
    expect(byPrincipal.events[0]).toEqual({
      id: newest.id,
      at: newest.at,
      principal,
      onBehalfOf: '',
      peer: newest.peer,
      method: 'RollbackSwap',
      requestId: newest.request_id,
      requestFingerprint: '',
      status: 'FAILED_PRECONDITION',
      reason: 'INVALID_STATUS',
      replayed: false,
      swapIds: [],
      conflictIds: [],
      traceId: newest.trace_id,
      prevHash: newest.prev_hash,
      hash: newest.hash,
    });

    const rollbacks = await audit.listAuditEvents({
      principal,
      method: '/swap.v1.SwapService/RollbackSwap',
    });
    expect(ids(rollbacks.events)).toEqual(ids(mine.filter((r) => r.method === 'RollbackSwap')));
    const executes = await audit.listAuditEvents({ principal, method: 'ExecuteSwap' });
    expect(executes.events).toHaveLength(5);

    const bySwap = await audit.listAuditEvents({ swapId: swapIds[1]! });
    expect(bySwap.events.map((e) => e.method)).toEqual(['RollbackSwap', 'ExecuteSwap']);

    // [from, to): from the 2nd oldest up to, not including, the 5th oldest.
    const oldestFirst = [...mine].reverse();
    const from = oldestFirst[1]!.at;
    const to = oldestFirst[4]!.at;
    const window = await audit.listAuditEvents({ principal, from, to });
    expect(ids(window.events)).toEqual(
      ids(mine.filter((r) => r.at.getTime() >= from.getTime() && r.at.getTime() < to.getTime())),
    );
  });

  it('pages by keyset: every page is exactly the rows an OFFSET query returns', async () => {
    const pageSize = 3;
    const all = await auditRows(fx.db);
    const seen: string[] = [];
    let token = '';
    for (let page = 0; ; page++) {
      const { events, nextPageToken } = await audit.listAuditEvents({ pageSize, pageToken: token });
      const { rows } = await fx.db.query<{ id: string }>(
        'select id::text as id from audit_event order by audit_event.id desc offset $1 limit $2',
        [page * pageSize, pageSize],
      );
      expect(ids(events), `page ${page}`).toEqual(ids(rows));
      seen.push(...ids(events));
      if (!nextPageToken) break;
      token = nextPageToken;
    }
    expect(seen).toEqual(ids(all).reverse());

    // Filtered, too, with the default page size beyond the end.
    const first = await audit.listAuditEvents({ principal, pageSize: 4 });
    const second = await audit.listAuditEvents({
      principal,
      pageSize: 4,
      pageToken: first.nextPageToken,
    });
    expect([...ids(first.events), ...ids(second.events)]).toEqual(ids(mine));
    expect(second.nextPageToken).toBe('');
  });

  it('refuses a bad page size, page token, range or swap id', async () => {
    const first = await audit.listAuditEvents({ principal, pageSize: 2 });
    const cases: [Parameters<AuditApi['listAuditEvents']>[0], string][] = [
      [{ pageSize: 501 }, 'INVALID_PAGE_SIZE'],
      [{ pageSize: -1 }, 'INVALID_PAGE_SIZE'],
      [{ pageToken: 'garbage' }, 'INVALID_PAGE_TOKEN'],
      [
        { pageToken: Buffer.from('{"id":"99999999999999999999","f":"x"}').toString('base64url') },
        'INVALID_PAGE_TOKEN',
      ],
      // A token is good only with the filter it was issued for.
      [{ principal: 'someone else', pageToken: first.nextPageToken }, 'INVALID_PAGE_TOKEN'],
      [{ from: new Date('2030-01-02'), to: new Date('2030-01-01') }, 'INVALID_RANGE'],
      [{ swapId: 'not-a-uuid' }, 'INVALID_ID'],
    ];
    for (const [request, reason] of cases) {
      const error = await failure(audit.listAuditEvents(request));
      expect([status[error.code], errorDetails(error).reason], JSON.stringify(request)).toEqual([
        'INVALID_ARGUMENT',
        reason,
      ]);
    }
  });
});

// ---------------------------------------------------------------------------
// The service as its own process: killed between commit and reply, and unable to write a refusal's row.

describe('the service in a process of its own', () => {
  let db: TestDatabase | undefined;
  let f: ScheduleFixture | undefined;
  const processes = new ProcessHarness(() => db!.url);
  beforeAll(async () => {
    db = await createTestDatabase();
    f = await ScheduleFixture.connect(db.url);
  });
  afterAll(async () => {
    await processes.close();
    await f?.close();
    await db?.drop();
  });

  // The children run on the real clock: weeks far ahead of it.
  const farPair = () =>
    fmitSwapPair(f!, { sourceWeek: '2031-03-03', targetWeek: '2031-03-17', reason: 'crash' });

  it('answers a refusal with its own status when its row cannot be written, and logs why', async () => {
    // A second's ceiling: a refusal's row gives up waiting for the chain's head after it.
    const child = await processes.serve({ TX_TIMEOUT_CEILING_MS: '1000' });
    const pair = await farPair();
    const idle = await f!.faculty();
    const holder = await connect(db!.url);
    const observer = await connect(db!.url);
    try {
      // Another writer holds the chain's head past the refusal's budget for its row.
      await holder.query('begin');
      await holder.query('select * from audit_chain_head for update');
      const holderPid = await backendPid(holder);
      const requestId = randomUUID();
      const answer = executeSwapAnswer(processes.clientOf(child.port), {
        ...pair.request(requestId),
        sourceFacultyId: idle,
      });
      await waitFor('the refusal to wait for the chain head', async () => {
        const { rows } = await observer.query(
          `select pid from pg_stat_activity where datname = $1 and $2 = any(pg_blocking_pids(pid))`,
          [db!.name, holderPid],
        );
        return rows.length > 0;
      });
      const error = errorOf(await answer);
      expect([status[error.code], errorDetails(error).reason]).toEqual([
        'FAILED_PRECONDITION',
        'NO_ASSIGNMENTS',
      ]);
      const logged = await child.logged('audit event not recorded');
      expect(logged).toMatchObject({
        level: 'error',
        audit: { method: 'ExecuteSwap', requestId, status: 'FAILED_PRECONDITION' },
      });
      await holder.query('rollback');
      expect(await rowsOfRequest(requestId, f!.db)).toEqual([]);
    } finally {
      await holder.query('rollback').catch(() => undefined);
      await holder.end();
      await observer.end();
    }
  });

  it(
    'still has the committed swap’s row after the server was SIGKILLed before replying',
    { timeout: 120_000 },
    async () => {
      const pair = await farPair();
      const child = await processes.serve();
      const requestId = randomUUID();
      const committedSwap = async () =>
        (
          await f!.db.query<{ id: string }>(
            'select id from swap_record where source_faculty_id = $1',
            [pair.source],
          )
        ).rows;
      const { exit, answer } = await processes.crashBeforeReply(
        child,
        (client) => executeSwapAnswer(client, pair.request(requestId), { deadlineMs: 60_000 }),
        async () => (await committedSwap()).length === 1,
      );
      expect(exit).toEqual({ code: null, signal: 'SIGKILL' });
      expect(answer.ok).toBe(false);

      const [swap] = await committedSwap();
      expect(await rowsOfRequest(requestId, f!.db)).toEqual([
        expect.objectContaining({
          method: 'ExecuteSwap',
          status: 'OK',
          replayed: false,
          swap_ids: [swap!.id],
        }),
      ]);
      await expectChainHolds(f!.db);
    },
  );
});
