import { randomUUID } from 'node:crypto';
import v8 from 'node:v8';
import { credentials, status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addDays } from '../src/domain/calendar';
import {
  ExecuteSwapRequest,
  type ExecuteSwapResponse,
  SwapServiceClient,
  SwapType,
} from '../src/generated/swap/v1/swap';
import { seededRandom } from '../src/dev/seeded-random';
import { TEST_REDIS_URL } from './support/redis-url';
import { executeSwapAnswer } from './support/replay-aware-calls';
import { ScheduleFixture } from './support/schedule-fixture';
import { type ServiceProcess, startServiceProcess } from './support/service-process';
import { createTestDatabase, type TestDatabase } from './support/test-database';
import { errorDetails } from './support/test-service';

/**
 * Two replicas of the service, each its own process, over one database and one
 * Redis with the same lock key prefix, as they run in production. About a
 * hundred overlapping swaps are sent to them at once, some to both with the
 * same request_id. Afterwards the schedule must be exactly what the committed
 * swap records say happened to it, and every request must have run at most once.
 */

const FACULTY = 10;
const WEEKS = 6;
/** The first three weeks only see same-week exchanges, which are always valid. */
const EXCHANGE_WEEKS = 3;
const PAIRS = 15;
const EXCHANGE_SINGLES = 30;
const CROSS_SINGLES = 40;
const GENEROUS_DEADLINE_MS = 120_000;

// ---------------------------------------------------------------------------
// Calls.

type Outcome =
  | { ok: true; response: ExecuteSwapResponse; replayed: boolean }
  | { ok: false; code: string; violations: string[]; message: string };

async function executeSwap(
  client: SwapServiceClient,
  request: ExecuteSwapRequest,
): Promise<Outcome> {
  const answer = await executeSwapAnswer(client, request, { deadlineMs: GENEROUS_DEADLINE_MS });
  if (answer.ok) return { ok: true, response: answer.response, replayed: answer.replayed };
  const { error } = answer;
  return {
    ok: false,
    code: status[error.code] ?? String(error.code),
    violations: errorDetails(error).violations,
    message: error.details,
  };
}

function describeOutcome(o: Outcome): string {
  return o.ok ? 'OK' : `${o.code}/${[...new Set(o.violations)].sort().join('+')}`;
}

// ---------------------------------------------------------------------------

let db: TestDatabase | undefined;
let fx: ScheduleFixture | undefined;
const services: ServiceProcess[] = [];
const clients: SwapServiceClient[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  fx = await ScheduleFixture.connect(db.url);
});
afterAll(async () => {
  for (const client of clients) client.close();
  // Even when an assertion failed midway, no child outlives the file.
  for (const service of services) service.kill('SIGKILL');
  await Promise.all(services.map((s) => s.exited));
  await fx?.close();
  await db?.drop();
});

describe('two service processes sharing one database and one Redis', () => {
  it(
    'apply ~100 overlapping swaps, each request at most once, and keep the schedule consistent',
    { timeout: 240_000 },
    async () => {
      // TEST_SEED replays a workload that failed; the seed is in every failure message.
      const seed = Number(process.env.TEST_SEED ?? Date.now() % 1_000_000);
      const random = seededRandom(seed);
      const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
      const f = fx!;

      // The children run on the real clock: weeks far ahead of it.
      const weeks = Array.from({ length: WEEKS }, (_, i) => addDays('2031-03-03', 7 * i));
      const faculty: string[] = [];
      for (let i = 0; i < FACULTY; i++) faculty.push(await f.faculty('core', `Dr ${i}`));
      // Each faculty-week: two random half-days (shared blocks are allowed, so
      // cross-week swaps can double-book), and sometimes a Friday or Saturday call.
      // The rotation is not FMIT, so back-to-back weeks are allowed.
      const slots = [0, 1, 2, 3, 4, 5, 6].flatMap((day) =>
        (['AM', 'PM'] as const).map((half) => ({ day, half })),
      );
      for (const person of faculty) {
        for (const week of weeks) {
          const chosen = [...slots].sort(() => random() - 0.5).slice(0, 2);
          for (const { day, half } of chosen)
            await f.assign(person, addDays(week, day), half, { rotation: 'wards' });
          if (random() < 0.4) await f.call(person, addDays(week, random() < 0.5 ? 4 : 5));
        }
      }

      const initialAssignments = await f.db.query<{ id: string; person_id: string }>(
        `select id, person_id from assignment`,
      );
      const initialCalls = await f.db.query<{ id: string; person_id: string }>(
        `select id, person_id from call_assignment`,
      );
      const perBlock = `select block_id, count(*)::int as n from assignment group by 1 order by 1`;
      const perDate = `select date, count(*)::int as n from call_assignment group by 1 order by 1`;
      const blocksBefore = (await f.db.query(perBlock)).rows;
      const callsBefore = (await f.db.query(perDate)).rows;

      // The workload. Same-week exchanges (A's and B's half-days of one week trade
      // places) are valid whatever ran before, so they must all succeed; the pairs
      // sent to both processes are among them. Cross-week swaps and absorbs in the
      // other weeks overlap each other and fail or not depending on the order.
      const twoOf = () => {
        const a = pick(faculty);
        let b = pick(faculty);
        while (b === a) b = pick(faculty);
        return [a, b] as const;
      };
      const exchange = (): ExecuteSwapRequest => {
        const [a, b] = twoOf();
        const week = pick(weeks.slice(0, EXCHANGE_WEEKS));
        return ExecuteSwapRequest.fromPartial({
          sourceFacultyId: a,
          sourceWeek: week,
          targetFacultyId: b,
          targetWeek: week,
          swapType: SwapType.SWAP_TYPE_ONE_TO_ONE,
          reason: 'exchange',
          requestId: randomUUID(),
        });
      };
      const crossWeek = (): ExecuteSwapRequest => {
        const [a, b] = twoOf();
        const late = weeks.slice(EXCHANGE_WEEKS);
        const week = pick(late);
        if (random() < 0.3) {
          return ExecuteSwapRequest.fromPartial({
            sourceFacultyId: a,
            sourceWeek: week,
            targetFacultyId: b,
            swapType: SwapType.SWAP_TYPE_ABSORB,
            reason: 'absorb',
            requestId: randomUUID(),
          });
        }
        let other = pick(late);
        while (other === week) other = pick(late);
        return ExecuteSwapRequest.fromPartial({
          sourceFacultyId: a,
          sourceWeek: week,
          targetFacultyId: b,
          targetWeek: other,
          swapType: SwapType.SWAP_TYPE_ONE_TO_ONE,
          reason: 'cross-week',
          requestId: randomUUID(),
        });
      };
      type Planned = { request: ExecuteSwapRequest; kind: 'pair' | 'exchange' | 'cross' };
      const planned: Planned[] = [
        ...Array.from({ length: PAIRS }, () => ({ request: exchange(), kind: 'pair' as const })),
        ...Array.from({ length: EXCHANGE_SINGLES }, () => ({
          request: exchange(),
          kind: 'exchange' as const,
        })),
        ...Array.from({ length: CROSS_SINGLES }, () => ({
          request: crossWeek(),
          kind: 'cross' as const,
        })),
      ].sort(() => random() - 0.5);

      // Both replicas contend on the same Redis lock keys.
      const lockKeyPrefix = `tp${randomUUID().slice(0, 8)}`;
      for (let i = 0; i < 2; i++) {
        // One after the other, so their start-up migrations do not race.
        services.push(
          await startServiceProcess({
            DATABASE_URL: db!.url,
            REDIS_URL: TEST_REDIS_URL,
            LOCK_KEY_PREFIX: lockKeyPrefix,
            // Calls queue behind each other; waiting is fine, giving up would blur the verdict.
            LOCK_WAIT_MS: '60000',
          }),
        );
      }
      for (const { port } of services) {
        clients.push(
          new SwapServiceClient(`127.0.0.1:${port}`, credentials.createInsecure(), {
            'grpc.use_local_subchannel_pool': 1,
          }),
        );
      }
      const [one, two] = clients as [SwapServiceClient, SwapServiceClient];

      const results = await Promise.all(
        planned.map(async (p, i) => ({
          ...p,
          outcomes:
            p.kind === 'pair'
              ? await Promise.all([executeSwap(one, p.request), executeSwap(two, p.request)])
              : [await executeSwap(i % 2 === 0 ? one : two, p.request)],
        })),
      );
      // What each caller was told.
      const tally: Record<string, number> = {};
      for (const r of results) {
        for (const o of r.outcomes) {
          const key = `${r.kind} ${describeOutcome(o)}`;
          tally[key] = (tally[key] ?? 0) + 1;
        }
      }
      const context = `seed ${seed}, outcomes ${JSON.stringify(tally)}`;
      const allowedFailures = new Set(['NO_ASSIGNMENTS', 'DOUBLE_BOOKING']);
      for (const r of results) {
        for (const o of r.outcomes) {
          if (r.kind !== 'cross') expect(describeOutcome(o), context).toBe('OK');
          else if (!o.ok) {
            expect(o.code, `${context}: ${o.message}`).toBe('FAILED_PRECONDITION');
            for (const v of o.violations) expect(allowedFailures, context).toContain(v);
          }
        }
      }
      // A request sent to both processes: one ran it, the other replayed the same answer.
      for (const r of results.filter((x) => x.kind === 'pair')) {
        const [x, y] = r.outcomes.map((o) => (o.ok ? o.response : o)) as [unknown, unknown];
        expect(x, context).toEqual(y);
        expect(
          r.outcomes.map((o) => o.ok && o.replayed).sort(),
          `${context}: replay headers of a pair`,
        ).toEqual([false, true]);
      }
      const okSwapIds = new Set(
        results.flatMap((r) => r.outcomes.flatMap((o) => (o.ok ? [o.response.swap!.id] : []))),
      );
      const okRequests = results.filter((r) => r.outcomes.some((o) => o.ok)).length;
      expect(okSwapIds.size, `${context}: ${JSON.stringify(tally)}`).toBe(okRequests);

      // Each request applied at most once: one swap record and one key per request that succeeded.
      const swaps = await f.db.query<{
        id: string;
        moves: {
          assignments: {
            assignmentId: string;
            fromPersonId: string;
            toPersonId: string;
            version: number;
          }[];
          calls: { callId: string; fromPersonId: string; toPersonId: string; version: number }[];
        };
      }>(`select id, moves from swap_record`);
      expect(new Set(swaps.rows.map((s) => s.id)), context).toEqual(okSwapIds);
      const keys = await f.db.query<{ scope: string; response: Buffer }>(
        `select scope, response from idempotency_record`,
      );
      expect(
        keys.rows.map((k) => k.scope).every((s) => s === '["anonymous",null,"ExecuteSwap"]'),
      ).toBe(true);
      // The stored answer is the use case's result, structured-clone serialized,
      // or, for a request the rules refused, the violations it was refused with.
      const stored = keys.rows.map(
        (k) =>
          v8.deserialize(k.response) as { id: string } | { $refusedWith: { reason: string }[] },
      );
      const answers = stored.filter((a): a is { id: string } => !('$refusedWith' in a));
      const refusals = stored.flatMap((a) => ('$refusedWith' in a ? [a.$refusedWith] : []));
      expect(new Set(answers.map((a) => a.id)), context).toEqual(okSwapIds);
      expect(answers).toHaveLength(okRequests);
      for (const violations of refusals)
        for (const v of violations) expect(allowedFailures, context).toContain(v.reason);

      // Nobody double-booked; every block and every call date kept its count.
      expect((await f.invariantBreaches()).doubleBooked, context).toBe(0);
      expect((await f.db.query(perBlock)).rows, context).toEqual(blocksBefore);
      expect((await f.db.query(perDate)).rows, context).toEqual(callsBefore);

      // No lost update: each row's moves, in version order, form one unbroken
      // chain from its first holder to its holder now, one version per move.
      const chains = async (
        initial: { id: string; person_id: string }[],
        table: 'assignment' | 'call_assignment',
        movesOf: (s: (typeof swaps.rows)[number]) => {
          id: string;
          from: string;
          to: string;
          version: number;
        }[],
      ) => {
        const now = await f.db.query<{ id: string; person_id: string; version: number }>(
          `select id, person_id, version from ${table}`,
        );
        const current = new Map(now.rows.map((r) => [r.id, r]));
        const moves = new Map<string, { from: string; to: string; version: number }[]>();
        for (const { id, ...move } of swaps.rows.flatMap(movesOf))
          moves.set(id, [...(moves.get(id) ?? []), move]);
        for (const { id, person_id: first } of initial) {
          const chain = (moves.get(id) ?? []).sort((a, b) => a.version - b.version);
          let holder = first;
          chain.forEach((m, i) => {
            expect(m, `${context}: ${table} ${id} move ${i}`).toEqual({
              from: holder,
              to: m.to,
              version: i + 2,
            });
            holder = m.to;
          });
          expect(current.get(id), `${context}: ${table} ${id}`).toEqual({
            id,
            person_id: holder,
            version: chain.length + 1,
          });
        }
      };
      await chains(initialAssignments.rows, 'assignment', (s) =>
        s.moves.assignments.map((m) => ({
          id: m.assignmentId,
          from: m.fromPersonId,
          to: m.toPersonId,
          version: m.version,
        })),
      );
      await chains(initialCalls.rows, 'call_assignment', (s) =>
        s.moves.calls.map((m) => ({
          id: m.callId,
          from: m.fromPersonId,
          to: m.toPersonId,
          version: m.version,
        })),
      );

      // Both replicas locked through Redis, and neither logged a warning or an
      // error (but the notice that a test serves plaintext).
      for (const service of services) {
        expect(service.logs.some((l) => l.locks === 'redis')).toBe(true);
        expect(
          service.logs.filter(
            (l) =>
              ['warn', 'error', 'fatal'].includes(l.level) && !l.msg.startsWith('plaintext gRPC'),
          ),
          context,
        ).toEqual([]);
      }
    },
  );
});
