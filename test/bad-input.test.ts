import { randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Timestamp } from '../src/generated/google/protobuf/timestamp';
import {
  ExecuteSwapRequest,
  GetSwapRequest,
  type ListSwapsRequest,
  SwapStatus,
  SwapType,
} from '../src/generated/swap/v1/swap';
import { failure } from './support/grpc-outcomes';
import { http2Call, RawClient } from './support/raw-calls';
import type { ScheduleFixture } from './support/schedule-fixture';
import { errorDetails, type TestService, useTestService } from './support/test-service';

/**
 * Malformed requests through the real gRPC client: each must fail with
 * INVALID_ARGUMENT, a message that names the field, and a BadRequest field
 * violation for exactly that field, before anything is read or written.
 */

let ts: TestService;
let fx: ScheduleFixture;
useTestService((started) => ({ ts, fx } = started));
/** A page token the service really issued, for ListSwaps with page_size 1 and no filter. */
let issuedToken: string;
beforeAll(async () => {
  const a = await fx.faculty('core');
  const b = await fx.faculty('core');
  for (const week of ['2030-03-04', '2030-04-01']) {
    await fx.assignWeek(a, week, { rotation: 'inpatient', halves: ['AM'] });
    await ts.api.executeSwap({
      ...absorb(),
      sourceFacultyId: a,
      sourceWeek: week,
      targetFacultyId: b,
    });
  }
  issuedToken = (await ts.api.listSwaps({ pageSize: 1 })).nextPageToken;
});

const SOURCE = randomUUID();
const TARGET = randomUUID();
const MONDAY = '2030-03-04';
const OTHER_MONDAY = '2030-03-18';

/** A well-formed ONE_TO_ONE request between two (unknown) faculty ids. */
function oneToOne(): Partial<ExecuteSwapRequest> {
  return {
    sourceFacultyId: SOURCE,
    sourceWeek: MONDAY,
    targetFacultyId: TARGET,
    targetWeek: OTHER_MONDAY,
    swapType: SwapType.SWAP_TYPE_ONE_TO_ONE,
    reason: 'conference',
    requestId: randomUUID(),
  };
}

function absorb(): Partial<ExecuteSwapRequest> {
  return { ...oneToOne(), targetWeek: '', swapType: SwapType.SWAP_TYPE_ABSORB };
}

const execute =
  (change: Partial<ExecuteSwapRequest>, base = oneToOne) =>
  () =>
    ts.api.executeSwap({ ...base(), ...change });
const validate =
  (change: Partial<ExecuteSwapRequest>, base = oneToOne) =>
  () =>
    ts.api.validateSwap({ ...base(), ...change });
const rollback = (change: { swapId?: string; reason?: string; requestId?: string }) => () =>
  ts.api.rollbackSwap({
    swapId: randomUUID(),
    reason: 'mistake',
    requestId: randomUUID(),
    ...change,
  });
const getSwap = (swapId: string) => () => ts.api.getSwap({ swapId });
const listSwaps = (request: Partial<ListSwapsRequest> | (() => Partial<ListSwapsRequest>)) => () =>
  ts.api.listSwaps(typeof request === 'function' ? request() : request);

const base64url = (text: string) => Buffer.from(text).toString('base64url');
/** The issued token with one of its fields replaced: what a caller tampering with it would send. */
function tampered(change: Record<string, unknown>): string {
  const cursor = JSON.parse(Buffer.from(issuedToken, 'base64url').toString('utf8')) as Record<
    string,
    unknown
  >;
  return base64url(JSON.stringify({ ...cursor, ...change }));
}

/** A ListConflicts page token (as the service encodes them) for `week`, with the no-filter fingerprint. */
const conflictToken = (week: string) =>
  base64url(JSON.stringify({ week, id: randomUUID(), f: '{}' }));

interface BadRequestCase {
  label: string;
  call: () => Promise<unknown>;
  field: string;
  reason: string;
}

// One row per malformed request; kept one per line so the table reads as a table.
// prettier-ignore
const CASES: BadRequestCase[] = [
  // ExecuteSwap: the people.
  { label: 'ExecuteSwap without source_faculty_id', call: execute({ sourceFacultyId: '' }), field: 'source_faculty_id', reason: 'MISSING_FIELD' },
  { label: 'ExecuteSwap with a name as source_faculty_id', call: execute({ sourceFacultyId: 'dr-smith' }), field: 'source_faculty_id', reason: 'INVALID_ID' },
  { label: 'ExecuteSwap with an unhyphenated source_faculty_id', call: execute({ sourceFacultyId: SOURCE.replaceAll('-', '') }), field: 'source_faculty_id', reason: 'INVALID_ID' },
  { label: 'ExecuteSwap with text after the source_faculty_id', call: execute({ sourceFacultyId: `${SOURCE} ` }), field: 'source_faculty_id', reason: 'INVALID_ID' },
  { label: 'ExecuteSwap without target_faculty_id', call: execute({ targetFacultyId: '' }), field: 'target_faculty_id', reason: 'MISSING_FIELD' },
  { label: 'ExecuteSwap with a malformed target_faculty_id', call: execute({ targetFacultyId: '1234' }), field: 'target_faculty_id', reason: 'INVALID_ID' },
  { label: 'ExecuteSwap with the same faculty on both sides', call: execute({ targetFacultyId: SOURCE }), field: 'target_faculty_id', reason: 'SAME_FACULTY' },
  { label: 'ExecuteSwap with the same faculty on both sides, in another case', call: execute({ targetFacultyId: SOURCE.toUpperCase() }), field: 'target_faculty_id', reason: 'SAME_FACULTY' },
  // ExecuteSwap: the weeks.
  { label: 'ExecuteSwap without source_week', call: execute({ sourceWeek: '' }), field: 'source_week', reason: 'MISSING_FIELD' },
  { label: 'ExecuteSwap with a Tuesday as source_week', call: execute({ sourceWeek: '2030-03-05' }), field: 'source_week', reason: 'INVALID_WEEK' },
  { label: 'ExecuteSwap with a Sunday as source_week', call: execute({ sourceWeek: '2030-03-10' }), field: 'source_week', reason: 'INVALID_WEEK' },
  { label: 'ExecuteSwap with words as source_week', call: execute({ sourceWeek: 'next monday' }), field: 'source_week', reason: 'INVALID_WEEK' },
  { label: 'ExecuteSwap with an impossible date as source_week', call: execute({ sourceWeek: '2030-02-31' }), field: 'source_week', reason: 'INVALID_WEEK' },
  { label: 'ExecuteSwap with a timestamp as source_week', call: execute({ sourceWeek: '2030-03-04T00:00:00Z' }), field: 'source_week', reason: 'INVALID_WEEK' },
  { label: 'ExecuteSwap with an unpadded source_week', call: execute({ sourceWeek: '2030-3-4' }), field: 'source_week', reason: 'INVALID_WEEK' },
  { label: 'ONE_TO_ONE without target_week', call: execute({ targetWeek: '' }), field: 'target_week', reason: 'MISSING_FIELD' },
  { label: 'ONE_TO_ONE with a Friday as target_week', call: execute({ targetWeek: '2030-03-22' }), field: 'target_week', reason: 'INVALID_WEEK' },
  { label: 'ONE_TO_ONE with words as target_week', call: execute({ targetWeek: 'soon' }), field: 'target_week', reason: 'INVALID_WEEK' },
  { label: 'ABSORB with a target_week', call: execute({ targetWeek: OTHER_MONDAY }, absorb), field: 'target_week', reason: 'UNEXPECTED_FIELD' },
  // ExecuteSwap: the type, the reason and the idempotency key.
  { label: 'ExecuteSwap with swap_type 99', call: execute({ swapType: 99 as SwapType }), field: 'swap_type', reason: 'INVALID_ENUM' },
  { label: 'ExecuteSwap with SWAP_TYPE_UNSPECIFIED', call: execute({ swapType: SwapType.SWAP_TYPE_UNSPECIFIED }), field: 'swap_type', reason: 'INVALID_ENUM' },
  { label: 'ExecuteSwap with a 2001-character reason', call: execute({ reason: 'x'.repeat(2001) }), field: 'reason', reason: 'TOO_LONG' },
  { label: 'ExecuteSwap without request_id', call: execute({ requestId: '' }), field: 'request_id', reason: 'MISSING_FIELD' },
  { label: 'ExecuteSwap with a malformed request_id', call: execute({ requestId: 'retry-1' }), field: 'request_id', reason: 'INVALID_ID' },
  // ValidateSwap parses the same fields the same way.
  { label: 'ValidateSwap with a malformed source_faculty_id', call: validate({ sourceFacultyId: 'x' }), field: 'source_faculty_id', reason: 'INVALID_ID' },
  { label: 'ValidateSwap without target_faculty_id', call: validate({ targetFacultyId: '' }), field: 'target_faculty_id', reason: 'MISSING_FIELD' },
  { label: 'ValidateSwap with a Wednesday as source_week', call: validate({ sourceWeek: '2030-03-06' }), field: 'source_week', reason: 'INVALID_WEEK' },
  { label: 'ValidateSwap with SWAP_TYPE_UNSPECIFIED', call: validate({ swapType: SwapType.SWAP_TYPE_UNSPECIFIED }), field: 'swap_type', reason: 'INVALID_ENUM' },
  { label: 'ValidateSwap with swap_type 99', call: validate({ swapType: 99 as SwapType }), field: 'swap_type', reason: 'INVALID_ENUM' },
  { label: 'ValidateSwap ONE_TO_ONE without target_week', call: validate({ targetWeek: '' }), field: 'target_week', reason: 'MISSING_FIELD' },
  { label: 'ValidateSwap ABSORB with a target_week', call: validate({ targetWeek: OTHER_MONDAY }, absorb), field: 'target_week', reason: 'UNEXPECTED_FIELD' },
  { label: 'ValidateSwap with the same faculty on both sides', call: validate({ targetFacultyId: SOURCE }), field: 'target_faculty_id', reason: 'SAME_FACULTY' },
  { label: 'ValidateSwap with a malformed (optional) request_id', call: validate({ requestId: 'abc' }), field: 'request_id', reason: 'INVALID_ID' },
  // RollbackSwap.
  { label: 'RollbackSwap without swap_id', call: rollback({ swapId: '' }), field: 'swap_id', reason: 'MISSING_FIELD' },
  { label: 'RollbackSwap with a malformed swap_id', call: rollback({ swapId: 'swap-42' }), field: 'swap_id', reason: 'INVALID_ID' },
  { label: 'RollbackSwap without reason', call: rollback({ reason: '' }), field: 'reason', reason: 'MISSING_FIELD' },
  { label: 'RollbackSwap with a blank reason', call: rollback({ reason: ' \t\n' }), field: 'reason', reason: 'MISSING_FIELD' },
  { label: 'RollbackSwap without request_id', call: rollback({ requestId: '' }), field: 'request_id', reason: 'MISSING_FIELD' },
  { label: 'RollbackSwap with a malformed request_id', call: rollback({ requestId: 'once' }), field: 'request_id', reason: 'INVALID_ID' },
  // GetSwap.
  { label: 'GetSwap without swap_id', call: getSwap(''), field: 'swap_id', reason: 'MISSING_FIELD' },
  { label: 'GetSwap with a malformed swap_id', call: getSwap('../etc/passwd'), field: 'swap_id', reason: 'INVALID_ID' },
  // ListSwaps.
  { label: 'ListSwaps with page_size -1', call: listSwaps({ pageSize: -1 }), field: 'page_size', reason: 'INVALID_PAGE_SIZE' },
  { label: 'ListSwaps with page_size 501', call: listSwaps({ pageSize: 501 }), field: 'page_size', reason: 'INVALID_PAGE_SIZE' },
  { label: 'ListSwaps with week_from after week_to', call: listSwaps({ weekFrom: OTHER_MONDAY, weekTo: MONDAY }), field: 'week_to', reason: 'INVALID_RANGE' },
  { label: 'ListSwaps with a Tuesday as week_from', call: listSwaps({ weekFrom: '2030-03-05' }), field: 'week_from', reason: 'INVALID_WEEK' },
  { label: 'ListSwaps with words as week_to', call: listSwaps({ weekTo: 'tomorrow' }), field: 'week_to', reason: 'INVALID_WEEK' },
  { label: 'ListSwaps with a malformed faculty_id', call: listSwaps({ facultyId: 'smith' }), field: 'faculty_id', reason: 'INVALID_ID' },
  { label: 'ListSwaps with status 99', call: listSwaps({ status: 99 as SwapStatus }), field: 'status', reason: 'INVALID_ENUM' },
  { label: 'ListSwaps with a garbage page_token', call: listSwaps({ pageToken: 'garbage!!' }), field: 'page_token', reason: 'INVALID_PAGE_TOKEN' },
  { label: 'ListSwaps with a base64 page_token of non-JSON', call: listSwaps({ pageToken: base64url('hello') }), field: 'page_token', reason: 'INVALID_PAGE_TOKEN' },
  { label: 'ListSwaps with a page_token of a JSON array', call: listSwaps({ pageToken: base64url('[]') }), field: 'page_token', reason: 'INVALID_PAGE_TOKEN' },
  { label: 'ListSwaps with a page_token of JSON null', call: listSwaps({ pageToken: base64url('null') }), field: 'page_token', reason: 'INVALID_PAGE_TOKEN' },
  { label: 'ListSwaps with a page_token whose id is not a UUID', call: listSwaps(() => ({ pageSize: 1, pageToken: tampered({ id: 'not-a-uuid' }) })), field: 'page_token', reason: 'INVALID_PAGE_TOKEN' },
  { label: 'ListSwaps with a page_token whose time is not a date', call: listSwaps(() => ({ pageSize: 1, pageToken: tampered({ at: 'yesterday' }) })), field: 'page_token', reason: 'INVALID_PAGE_TOKEN' },
  { label: 'ListSwaps with a page_token issued for another filter', call: listSwaps(() => ({ pageSize: 1, status: SwapStatus.SWAP_STATUS_EXECUTED, pageToken: issuedToken })), field: 'page_token', reason: 'INVALID_PAGE_TOKEN' },
  // Dates far from the present (a neighbouring week of 9999-12-20 is in year 10000).
  { label: 'ExecuteSwap with source_week 9999-12-20', call: execute({ sourceWeek: '9999-12-20' }), field: 'source_week', reason: 'INVALID_WEEK' },
  { label: 'ExecuteSwap with source_week 1999-12-27', call: execute({ sourceWeek: '1999-12-27' }), field: 'source_week', reason: 'INVALID_WEEK' },
  { label: 'ValidateSwap with target_week 2201-01-05', call: validate({ targetWeek: '2201-01-05' }), field: 'target_week', reason: 'INVALID_WEEK' },
  { label: 'ListSwaps with week_to 9999-12-27', call: listSwaps({ weekTo: '9999-12-27' }), field: 'week_to', reason: 'INVALID_WEEK' },
  { label: 'DetectConflicts over 9999-12-20', call: () => ts.conflicts.detectConflicts({ weekFrom: '9999-12-20', weekTo: '9999-12-27' }), field: 'week_from', reason: 'INVALID_WEEK' },
  // Page tokens whose time or week is out of range.
  { label: 'ListSwaps with a page_token whose time is in year 275760', call: listSwaps(() => ({ pageSize: 1, pageToken: tampered({ at: '+275760-09-13T00:00:00.000Z' }) })), field: 'page_token', reason: 'INVALID_PAGE_TOKEN' },
  { label: 'ListSwaps with a page_token whose time is in year -1', call: listSwaps(() => ({ pageSize: 1, pageToken: tampered({ at: '-000001-01-01T00:00:00.000Z' }) })), field: 'page_token', reason: 'INVALID_PAGE_TOKEN' },
  { label: 'ListConflicts with a page_token for week 0000-01-01', call: () => ts.conflicts.listConflicts({ pageToken: conflictToken('0000-01-01') }), field: 'page_token', reason: 'INVALID_PAGE_TOKEN' },
  { label: 'ListConflicts with a page_token for week 2030-02-31', call: () => ts.conflicts.listConflicts({ pageToken: conflictToken('2030-02-31') }), field: 'page_token', reason: 'INVALID_PAGE_TOKEN' },
  // NUL, which PostgreSQL cannot store in text.
  { label: 'ExecuteSwap with a NUL in reason', call: execute({ reason: 'conf\0erence' }), field: 'reason', reason: 'INVALID_TEXT' },
  { label: 'RollbackSwap with a NUL in reason', call: rollback({ reason: 'mis\0take' }), field: 'reason', reason: 'INVALID_TEXT' },
  { label: 'IgnoreConflict with a NUL in reason', call: () => ts.conflicts.ignoreConflict({ conflictId: randomUUID(), reason: 'dup\0', requestId: randomUUID() }), field: 'reason', reason: 'INVALID_TEXT' },
  { label: 'ResolveConflict with a NUL in notes', call: () => ts.conflicts.resolveConflict({ conflictId: randomUUID(), optionId: 'DEFER_TO_HUMAN', notes: '\0', requestId: randomUUID() }), field: 'notes', reason: 'INVALID_TEXT' },
  // Lengths in code points.
  { label: 'ExecuteSwap with a reason of 2001 emoji', call: execute({ reason: '👍'.repeat(2001) }), field: 'reason', reason: 'TOO_LONG' },
  { label: 'ResolveConflict with a 101-character option_id', call: () => ts.conflicts.resolveConflict({ conflictId: randomUUID(), optionId: 'x'.repeat(101), requestId: randomUUID() }), field: 'option_id', reason: 'TOO_LONG' },
];

describe('INVALID_ARGUMENT', () => {
  it.each(CASES)('$label', async ({ call, field, reason }) => {
    const before = await fx.snapshot();
    const error = await failure(call());
    expect(error.code, `${error.code} ${error.details}`).toBe(status.INVALID_ARGUMENT);
    expect(error.details).toContain(field);
    expect(errorDetails(error)).toEqual({ reason, violations: [], fields: [field] });
    expect(await fx.snapshot()).toEqual(before);
  });

  it('is not raised for the boundaries that are allowed', async () => {
    expect(issuedToken).not.toBe('');
    await expect(ts.api.listSwaps({ pageSize: 0 })).resolves.toMatchObject({ nextPageToken: '' });
    await expect(
      ts.api.listSwaps({ pageSize: 500, weekFrom: MONDAY, weekTo: MONDAY }),
    ).resolves.toBeDefined();
    const page2 = await ts.api.listSwaps({ pageSize: 1, pageToken: issuedToken });
    expect(page2.swaps).toHaveLength(1);
    await expect(
      ts.api.validateSwap({ ...oneToOne(), reason: 'x'.repeat(2000), requestId: '' }),
    ).resolves.toMatchObject({ valid: false });
  });
});

describe('NOT_FOUND', () => {
  it.each([
    ['GetSwap', () => ts.api.getSwap({ swapId: randomUUID() })],
    [
      'RollbackSwap',
      () =>
        ts.api.rollbackSwap({ swapId: randomUUID(), reason: 'mistake', requestId: randomUUID() }),
    ],
  ])('%s of an unknown, well-formed id gives SWAP_NOT_FOUND', async (_, call) => {
    const error = await failure(call());
    expect(error.code).toBe(status.NOT_FOUND);
    expect(errorDetails(error).reason).toBe('SWAP_NOT_FOUND');
  });
});

describe('what counts as a character', () => {
  it('counts code points: 1,500 emoji (3,000 UTF-16 units) are within the 2,000 limit', async () => {
    const reason = '👍'.repeat(1500);
    expect(reason.length).toBe(3000);
    await expect(
      ts.api.validateSwap({ ...oneToOne(), reason, requestId: '' }),
    ).resolves.toMatchObject({ valid: false });
  });

  it('accepts weeks at both ends of the range (2000-01-03 and 2200-12-29)', async () => {
    for (const sourceWeek of ['2000-01-03', '2200-12-29']) {
      await expect(ts.api.validateSwap({ ...oneToOne(), sourceWeek })).resolves.toMatchObject({
        valid: false,
      });
    }
  });
});

describe('caller input echoed in errors', () => {
  it('never echoes a huge option_id: the answer stays small', async () => {
    const error = await failure(
      ts.conflicts.resolveConflict({
        conflictId: randomUUID(),
        optionId: 'o'.repeat(100_000),
        requestId: randomUUID(),
      }),
    );
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(errorDetails(error).reason).toBe('TOO_LONG');
    expect(error.details.length).toBeLessThan(200);
    expect(error.metadata.get('grpc-status-details-bin')[0]!.length).toBeLessThan(1024);
  });
});

describe('request bytes', () => {
  let raw: RawClient;
  beforeAll(() => {
    raw = new RawClient(ts.address);
  });
  afterAll(() => raw.close());

  /** ExecuteSwapRequest `reason` (field 6) with bytes that are not UTF-8, after the valid fields. */
  function executeWithReasonBytes(reason: number[]): Buffer {
    const valid = ExecuteSwapRequest.encode(ExecuteSwapRequest.fromPartial(oneToOne())).finish();
    return Buffer.concat([valid, Buffer.from([(6 << 3) | 2, reason.length, ...reason])]);
  }

  it.each([
    ['/swap.v1.SwapService/ExecuteSwap', [0xff, 0xff, 0xff]],
    ['/swap.v1.SwapService/ListSwaps', [0x0a, 0x05, 0x61]],
    ['/swap.v1.ConflictService/AutoResolve', [0x08]],
    ['/swap.v1.AuditService/VerifyAuditChain', [0x0f]],
    ['/grpc.health.v1.Health/Check', [0xff, 0xff, 0xff]],
  ])('%s: undecodable bytes are INVALID_ARGUMENT, not INTERNAL', async (path, bytes) => {
    const before = await fx.snapshot();
    const outcome = await raw.unary(path, Buffer.from(bytes));
    expect(outcome.code, `${outcome.code} ${outcome.details}`).toBe(status.INVALID_ARGUMENT);
    if (outcome.error) expect(errorDetails(outcome.error).reason).toBe('INVALID_ENCODING');
    expect(await fx.snapshot()).toEqual(before);
  });

  it.each([
    ['a lone continuation byte', [0x80]],
    ['a truncated sequence', [0x61, 0xe2, 0x82]],
    ['an overlong encoding', [0xc0, 0xaf]],
    ['a surrogate', [0xed, 0xa0, 0x80]],
  ])('refuses invalid UTF-8 (%s) in a string field instead of storing U+FFFD', async (_, bytes) => {
    const before = await fx.snapshot();
    const outcome = await raw.unary(
      '/swap.v1.SwapService/ExecuteSwap',
      executeWithReasonBytes(bytes),
    );
    expect(outcome.code, `${outcome.code} ${outcome.details}`).toBe(status.INVALID_ARGUMENT);
    expect(outcome.details).toMatch(/UTF-8/);
    expect(await fx.snapshot()).toEqual(before);
  });

  it('(control) reads valid UTF-8 in the same place', async () => {
    const outcome = await raw.unary(
      '/swap.v1.SwapService/ValidateSwap',
      executeWithReasonBytes([...Buffer.from('café ☕')]),
    );
    expect(outcome.code, outcome.details).toBe(status.OK);
  });

  it('refuses a ListAuditEvents time that no date can hold, naming the field', async () => {
    const tooLate = Timestamp.encode({ seconds: '10000000000000', nanos: 0 }).finish();
    const bytes = Buffer.from([(3 << 3) | 2, tooLate.length, ...tooLate]);
    const outcome = await raw.unary('/swap.v1.AuditService/ListAuditEvents', bytes);
    expect(outcome.code, outcome.details).toBe(status.INVALID_ARGUMENT);
    expect(errorDetails(outcome.error!)).toMatchObject({
      reason: 'INVALID_RANGE',
      fields: ['from'],
    });
  });

  it('serves a call with a malformed grpc-timeout under the default deadline (not INTERNAL)', async () => {
    const request = GetSwapRequest.encode({ swapId: randomUUID() }).finish();
    for (const timeout of ['soon', 'S1', '1 second', '']) {
      const answer = await http2Call(ts.address, '/swap.v1.SwapService/GetSwap', request, {
        'grpc-timeout': timeout,
      });
      expect(answer, timeout).toMatchObject({ code: status.NOT_FOUND });
    }
  });
});
