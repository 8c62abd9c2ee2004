import { randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { addDays } from '../src/domain/calendar';
import fc from 'fast-check';
import { service as healthService } from 'grpc-health-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AuditServiceService,
  ListAuditEventsRequest,
  VerifyAuditChainRequest,
  VerifyAuditChainResponse,
} from '../src/generated/swap/v1/audit';
import {
  AcknowledgeConflictRequest,
  AutoResolveRequest,
  ConflictServiceService,
  DetectConflictsRequest,
  GetConflictRequest,
  GetResolutionOptionsRequest,
  IgnoreConflictRequest,
  ListConflictsRequest,
  ResolveConflictRequest,
} from '../src/generated/swap/v1/conflict';
import {
  GetFacultyScheduleRequest,
  ListFacultyRequest,
  ScheduleServiceService,
} from '../src/generated/swap/v1/schedule';
import {
  ExecuteSwapRequest,
  GetSwapRequest,
  ListSwapsRequest,
  RollbackSwapRequest,
  SwapServiceService,
  ValidateSwapRequest,
} from '../src/generated/swap/v1/swap';
import { checkHealth, freshHealthClient } from './support/health-client';
import { RawClient, type RawOutcome } from './support/raw-calls';
import type { ScheduleFixture } from './support/schedule-fixture';
import { fmitSwapPair } from './support/swap-pair';
import { type TestService, useTestService } from './support/test-service';

/**
 * Fuzzes every RPC of every service we serve (Swap, Conflict, Audit, Schedule, health) with fast-check: messages built
 * from the generated types with values near and far from valid (ids, weeks,
 * page tokens, text with NUL, emoji and lone surrogates, extreme numbers and
 * times), their encodings mutated byte by byte, and bytes that are no message
 * at all, all sent raw through a real client. No answer may be INTERNAL or
 * UNKNOWN, the service must keep answering, and a call that is refused must
 * leave every table as it was (the audit trail excepted: it records refusals).
 *
 * FUZZ_RUNS sets the number of messages over all RPCs (default 1,700, about
 * 100 per RPC); a long run (FUZZ_RUNS=20000) prints the same summary.
 */

const TOTAL_RUNS = Number(process.env.FUZZ_RUNS ?? 1_700);

/** A request type as the fuzzer needs it: its fields' defaults and its encoder. */
interface Codec {
  fromPartial(object: Record<string, unknown>): unknown;
  encode(message: never): { finish(): Uint8Array };
}

interface Rpc {
  path: string;
  defaults: Record<string, unknown>;
  encode: (message: Record<string, unknown>) => Uint8Array;
  streaming: boolean;
}

function generated(definition: { path: string }, codec: Codec): Rpc {
  return {
    path: definition.path,
    defaults: codec.fromPartial({}) as Record<string, unknown>,
    encode: (m) => codec.encode(codec.fromPartial(m) as never).finish(),
    streaming: false,
  };
}

function health(method: 'Check' | 'Watch'): Rpc {
  const definition = healthService[method]!;
  return {
    path: definition.path,
    defaults: { service: '' },
    encode: (m) => definition.requestSerialize(m),
    streaming: method === 'Watch',
  };
}

const S = SwapServiceService;
const C = ConflictServiceService;
const A = AuditServiceService;
const D = ScheduleServiceService;
const RPCS: Rpc[] = [
  // First: it reads the whole audit trail, which every refused mutating call below lengthens.
  generated(A.verifyAuditChain, VerifyAuditChainRequest),
  generated(S.executeSwap, ExecuteSwapRequest),
  generated(S.validateSwap, ValidateSwapRequest),
  generated(S.rollbackSwap, RollbackSwapRequest),
  generated(S.getSwap, GetSwapRequest),
  generated(S.listSwaps, ListSwapsRequest),
  generated(C.detectConflicts, DetectConflictsRequest),
  generated(C.listConflicts, ListConflictsRequest),
  generated(C.getConflict, GetConflictRequest),
  generated(C.acknowledgeConflict, AcknowledgeConflictRequest),
  generated(C.ignoreConflict, IgnoreConflictRequest),
  generated(C.getResolutionOptions, GetResolutionOptionsRequest),
  generated(C.resolveConflict, ResolveConflictRequest),
  generated(C.autoResolve, AutoResolveRequest),
  generated(A.listAuditEvents, ListAuditEventsRequest),
  generated(D.listFaculty, ListFacultyRequest),
  generated(D.getFacultySchedule, GetFacultyScheduleRequest),
  health('Check'),
  health('Watch'),
];

// ── Values ────────────────────────────────────────────────────────────────

/** Ids the schedule really holds, filled in once it is built. */
const knownIds: string[] = [];

const mondays = fc
  .constantFrom(
    '1999-12-27',
    '2000-01-03',
    '2030-01-14',
    '2030-03-04',
    '2200-12-29',
    '2201-01-05',
    '9999-12-20',
    '9999-12-27',
    '0001-01-01',
  )
  .chain((w) => fc.constantFrom(w, w.replace(/-\d\d$/, '-31'), `${w}T00:00:00Z`, `+0${w}`));
const realMondays = fc
  .integer({ min: -30_000, max: 120_000 })
  .map((d) => new Date(Date.UTC(2000, 0, 3) + d * 7 * 86_400_000).toISOString().slice(0, 10));
const weeks = fc.oneof(
  mondays,
  realMondays,
  fc.date({ noInvalidDate: true }).map((d) => d.toISOString().slice(0, 10)),
);
const ids = fc.oneof(
  fc.nat().map((i) => knownIds[i % Math.max(1, knownIds.length)] ?? randomUUID()),
  fc.uuid(),
  fc.uuid().map((u) => u.toUpperCase()),
  fc.constantFrom('', 'not-a-uuid', '00000000-0000-0000-0000-000000000000', '../etc/passwd'),
);
const texts = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.constantFrom(
    '\0',
    'a\0b',
    '\uD800',
    '\uDFFF',
    '👍'.repeat(1500),
    '👍'.repeat(2001),
    'x'.repeat(2001),
    ' \t\n',
  ),
  fc.constantFrom(
    'DEFER_TO_HUMAN',
    'SPLIT_COVERAGE',
    'ESCALATE_TO_BACKUP',
    'REASSIGN_JUNIOR:calls',
    'SWAP_ASSIGNMENTS:',
  ),
  fc.constantFrom('ExecuteSwap', '/swap.v1.SwapService/ExecuteSwap', 'anonymous'),
);
const cursorValues = fc.oneof(
  weeks,
  ids,
  fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
  fc.constantFrom(
    '+275760-09-13T00:00:00.000Z',
    '-000001-01-01T00:00:00.000Z',
    '9223372036854775808',
    '1',
    '{}',
  ),
  fc.integer(),
  fc.constant(null),
);
const pageTokens = fc.oneof(
  fc
    .record(
      { at: cursorValues, week: cursorValues, id: cursorValues, f: cursorValues },
      { requiredKeys: [] },
    )
    .map((cursor) => Buffer.from(JSON.stringify(cursor)).toString('base64url')),
  fc.string({ unit: 'binary', maxLength: 60 }),
  fc.base64String({ maxLength: 80 }),
);
const strings = (field: string) => {
  if (/Ids?$/.test(field))
    return fc.oneof({ weight: 4, arbitrary: ids }, { weight: 1, arbitrary: texts });
  if (/[wW]eek/.test(field))
    return fc.oneof({ weight: 4, arbitrary: weeks }, { weight: 1, arbitrary: texts });
  if (field === 'pageToken')
    return fc.oneof({ weight: 4, arbitrary: pageTokens }, { weight: 1, arbitrary: texts });
  return texts;
};
const numbers = fc.oneof(
  fc.integer({ min: -3, max: 8 }),
  fc.constantFrom(0, 500, 501, -1, 2 ** 31 - 1, -(2 ** 31)),
  fc.integer(),
);
const times = fc.oneof(
  fc.date({ noInvalidDate: true }),
  fc.constantFrom(
    new Date(8.64e15),
    new Date(-8.64e15),
    new Date(0),
    new Date('2200-12-31T23:59:59Z'),
  ),
);

/** A value a field of this name and kind plausibly takes, so calls get past the first check. */
function plausible(name: string, value: unknown): fc.Arbitrary<unknown> {
  const known = fc.nat().map((i) => knownIds[i % Math.max(1, knownIds.length)] ?? randomUUID());
  if (typeof value === 'string') {
    if (/Ids?$/.test(name)) return fc.oneof(known, fc.uuid());
    if (/[wW]eek/.test(name))
      return fc.integer({ min: 0, max: 20 }).map((w) => addDays('2030-02-25', 7 * w));
    if (name === 'pageToken') return fc.constant('');
    if (name === 'optionId') return fc.constantFrom('DEFER_TO_HUMAN', 'REASSIGN_JUNIOR:calls', '');
    return fc.constantFrom('', 'fuzzing', 'a reason');
  }
  if (typeof value === 'number') return fc.integer({ min: 0, max: 4 });
  if (typeof value === 'boolean') return fc.boolean();
  if (Array.isArray(value)) return fc.array(known, { minLength: 1, maxLength: 3 });
  return fc.date({ min: new Date('2029-01-01'), max: new Date('2031-01-01'), noInvalidDate: true });
}

/** A value of the field's kind from anywhere, near and far from valid. */
function wild(name: string, value: unknown): fc.Arbitrary<unknown> {
  if (typeof value === 'string') return strings(name);
  if (typeof value === 'number') return numbers;
  if (typeof value === 'boolean') return fc.boolean();
  if (Array.isArray(value)) return fc.array(ids, { maxLength: 120 });
  return times; // the only message-typed request fields are Timestamps
}

/**
 * Messages of `rpc`'s request type: plausible ones with a field or two made
 * wild (to reach the checks behind the first), and wild ones throughout.
 */
function messages(rpc: Rpc): fc.Arbitrary<Record<string, unknown>> {
  const entries = Object.entries(rpc.defaults);
  const record = (pick: (name: string, value: unknown) => fc.Arbitrary<unknown>) =>
    fc.record(Object.fromEntries(entries.map(([n, v]) => [n, pick(n, v)])), { requiredKeys: [] });
  const nearlyValid = fc
    .tuple(
      record(plausible),
      record(wild),
      fc.subarray(
        entries.map(([n]) => n),
        { maxLength: Math.min(2, entries.length) },
      ),
    )
    .map(([base, wilder, names]) => ({
      ...base,
      ...Object.fromEntries(names.filter((n) => n in wilder).map((n) => [n, wilder[n]])),
    }));
  return fc.oneof({ weight: 2, arbitrary: nearlyValid }, { weight: 1, arbitrary: record(wild) });
}

/** Encoded messages, their mutations, and bytes that are no message at all. */
function requestBytes(rpc: Rpc): fc.Arbitrary<Uint8Array> {
  const encoded = messages(rpc).map((m) => rpc.encode(m));
  const mutated = fc
    .tuple(
      encoded,
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.nat(3)), {
        minLength: 1,
        maxLength: 4,
      }),
    )
    .map(([bytes, edits]) => {
      let out = [...bytes];
      for (const [at, byte, kind] of edits) {
        const i = out.length === 0 ? 0 : at % out.length;
        if (kind === 0)
          out[i] = byte; // overwrite
        else if (kind === 1)
          out.splice(i, 0, byte); // insert
        else if (kind === 2)
          out = out.slice(0, i); // truncate
        else out.push(byte, ...out.slice(0, 3)); // append garbage
      }
      return Uint8Array.from(out);
    });
  return fc.oneof(
    { weight: 5, arbitrary: encoded },
    { weight: 3, arbitrary: mutated },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }) },
  );
}

// ── The run ───────────────────────────────────────────────────────────────

let ts: TestService;
let fx: ScheduleFixture;
useTestService((started) => ({ ts, fx } = started));

let raw: RawClient;
/** Status counts per RPC, for the summary. */
const seen = new Map<string, Map<string, number>>();
let checkedTables: string[] = [];

/**
 * One digest of every table but what records refusals by design: the audit
 * trail, and the idempotency keys whose answer is a refusal (a request the
 * rules refused keeps that refusal as its answer).
 */
async function checksum(): Promise<string> {
  const parts = checkedTables.map((t) => {
    const rows =
      t === 'idempotency_record'
        ? `(select * from idempotency_record where response is null or position(convert_to('$refusedWith', 'UTF8') in response) = 0)`
        : `"${t}"`;
    return `select '${t}' as t, coalesce(md5(string_agg(md5(x::text), '' order by md5(x::text))), '') as h from ${rows} x`;
  });
  const { rows } = await fx.db.query<{ t: string; h: string }>(parts.join(' union all '));
  return rows.map((r) => `${r.t}:${r.h}`).join(',');
}

beforeAll(async () => {
  raw = new RawClient(ts.address);
  const { rows } = await fx.db.query<{ tablename: string }>(
    `select tablename from pg_tables where schemaname = 'public' and tablename not like 'audit_%' order by 1`,
  );
  checkedTables = rows.map((r) => r.tablename);
  // A small schedule for the fuzzer to aim at: a swap, a conflict and their people.
  const pair = await fmitSwapPair(fx, {
    sourceWeek: '2030-03-04',
    targetWeek: '2030-03-18',
    reason: 'fuzz',
  });
  const swap = (await ts.api.executeSwap(pair.request())).swap!;
  await fx.assignWeek(pair.source, '2030-03-11');
  await ts.conflicts.detectConflicts({ weekFrom: '2030-03-04', weekTo: '2030-03-25' });
  const conflicts = (await ts.conflicts.listConflicts({})).conflicts;
  knownIds.push(pair.source, pair.target, swap.id, ...conflicts.map((c) => c.id));
});

afterAll(() => {
  raw?.close();
  const summary = [...seen].map(([path, counts]) => ({ rpc: path, ...Object.fromEntries(counts) }));
  const total = summary.reduce(
    (n, row) =>
      n + Object.values(row).reduce((m: number, v) => m + (typeof v === 'number' ? v : 0), 0),
    0,
  );
  console.log(`fuzzed ${total} messages over ${seen.size} RPCs`);
  console.table(summary);
});

describe('fuzzed requests', () => {
  const runsPerRpc = Math.max(1, Math.ceil(TOTAL_RUNS / RPCS.length));

  it.each(RPCS.map((rpc) => [rpc.path, rpc] as const))(
    '%s: never INTERNAL or UNKNOWN; a refusal changes nothing',
    async (path, rpc) => {
      const counts = new Map<string, number>();
      seen.set(path, counts);
      let before = await checksum();
      await fc.assert(
        fc.asyncProperty(requestBytes(rpc), async (bytes) => {
          const outcome: RawOutcome = rpc.streaming
            ? await raw.firstOfStream(path, bytes)
            : await raw.unary(path, bytes);
          const name = status[outcome.code] ?? String(outcome.code);
          counts.set(name, (counts.get(name) ?? 0) + 1);
          expect(outcome.code, `${name} ${outcome.details}`).not.toBe(status.INTERNAL);
          expect(outcome.code, `${name} ${outcome.details}`).not.toBe(status.UNKNOWN);
          const after = await checksum();
          // Valid input may change the schedule; refused input may not.
          if (outcome.code !== status.OK) expect(after).toBe(before);
          before = after;
        }),
        { numRuns: runsPerRpc },
      );
    },
    // A long run needs longer than the suite's default; a message takes a few ms.
    Math.max(60_000, runsPerRpc * 200),
  );

  it('leaves the service serving and the audit chain intact', async () => {
    const client = freshHealthClient(ts.address);
    try {
      expect(await checkHealth(client, '')).toBe('SERVING');
    } finally {
      client.close();
    }
    const verdict = await raw.unary(AuditServiceService.verifyAuditChain.path, new Uint8Array());
    expect(verdict.code).toBe(status.OK);
    expect(VerifyAuditChainResponse.decode(verdict.response!).intact).toBe(true);
  });
});
