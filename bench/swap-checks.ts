import v8 from 'node:v8';
import type pg from 'pg';
import { daysBetween } from '../src/domain/calendar';
import type { Swap } from '../src/generated/swap/v1/swap';
import { toSwapMessage } from '../src/grpc/swap-messages';
import type { SwapRecord } from '../src/swaps/swap-record.entity';
import type { BenchMode } from './bench-options';
import type { CheckResult } from './bench-schedule-check';
import type { OtlpSink } from './otlp-sink';
import { ROWS_PER_SWAP, type SwapPair } from './swap-pairs';
import type { ServiceClients, SwapMode } from './swap-modes';

/** The one swap a mode made outside any measurement, on a pair of its own. */
export interface CensusSwap {
  mode: SwapMode;
  pair: SwapPair;
  requestId: string;
  /** Statements and Redis commands it sent, for the modes that run in this process. */
  statements: string[] | undefined;
  redis: string[];
}

/**
 * What each mode's swaps left in the database. Alerts: every swap runs
 * detection for its weeks, but the bench schedule has no conflict (one FMIT
 * week per person, the pair's two 14 days apart, calls with the attending, no
 * absences), so each mode must raise the same number: none. Fencing: a Redis
 * grant writes its fencing token on the record and the weeks, every grant
 * takes a new token, and advisory locks (`service`, or a fallback while Redis
 * is unusable) write none; a lost lease or a lock timeout fails the call, so
 * it shows as a failure instead.
 */
export async function checkModeRecords(
  db: pg.ClientBase,
  modes: readonly SwapMode[],
): Promise<CheckResult[]> {
  const { rows } = await db.query<{
    actor: string;
    swaps: number;
    tokens: number;
    alerts: number;
  }>(`
    select r.requested_by as actor, count(*)::int as swaps, count(r.fencing_token)::int as tokens,
           sum((select count(*) from conflict_alert a where a.swap_id = r.id))::int as alerts
    from swap_record r group by 1`);
  const totals = (
    await db.query<{ alerts: number; fenced: number; unique_tokens: number; tokens: number }>(`
      select (select count(*)::int from conflict_alert) as alerts,
             (select count(*)::int from faculty_week where fencing_token is not null) as fenced,
             (select count(distinct fencing_token)::int from swap_record) as unique_tokens,
             (select count(fencing_token)::int from swap_record) as tokens`)
  ).rows[0]!;
  const byMode = modes.map((m) => ({
    m,
    ...(rows.find((r) => r.actor === m.actor) ?? { swaps: 0, tokens: 0, alerts: 0 }),
  }));
  const misfenced = byMode.filter(
    (r) => !r.swaps || r.tokens !== (r.m.name === 'service' ? 0 : r.swaps),
  );
  return [
    {
      name: 'alerts raised by the swaps, per mode (bench schedule: none expected)',
      ok: totals.alerts === 0 && byMode.every((r) => r.swaps > 0 && r.alerts === 0),
      detail: `${byMode.map((r) => `${r.m.name} ${r.alerts} from ${r.swaps} swaps`).join(', ')}; ${totals.alerts} alerts in all`,
    },
    {
      name: 'Redis-locked modes fenced every swap with a token of its own; service (advisory) none',
      ok:
        misfenced.length === 0 &&
        totals.unique_tokens === totals.tokens &&
        totals.fenced > 0 === byMode.some((r) => r.m.name !== 'service'),
      detail:
        `swaps with a token: ${byMode.map((r) => `${r.m.name} ${r.tokens} of ${r.swaps}`).join(', ')}; ` +
        `${totals.unique_tokens} distinct tokens of ${totals.tokens}, ${totals.fenced} faculty weeks fenced` +
        (misfenced.length ? `; wrong: ${misfenced.map((r) => r.m.name).join(', ')}` : ''),
    },
  ];
}

/**
 * Whether every mode recorded its census swap alike: the answer it stored for
 * the request id, and the swap as GetSwap reads it back through the service,
 * each with people, dates and times put relative to the pair, so that swaps
 * of different pairs compare.
 */
export async function checkRecords(
  db: pg.ClientBase,
  census: readonly CensusSwap[],
  clients: ServiceClients,
): Promise<CheckResult> {
  const shapes: Array<{ mode: BenchMode; stored: string; read: string }> = [];
  for (const { mode, pair, requestId } of census) {
    const { rows } = await db.query<{ response: Buffer | null }>(
      'select response from idempotency_record where request_id = $1',
      [requestId],
    );
    const stored = rows[0]?.response
      ? toSwapMessage(v8.deserialize(rows[0].response) as SwapRecord)
      : undefined;
    const read = stored && (await getSwap(clients, stored.id));
    shapes.push({
      mode: mode.name,
      stored: shapeOf(stored, pair, mode.actor),
      read: shapeOf(read, pair, mode.actor),
    });
  }
  const first = shapes[0]!;
  const odd = shapes.filter((s) => s.stored !== first.stored || s.read !== first.stored);
  const moved = JSON.parse(first.stored) as { assignments?: unknown[]; calls?: unknown[] };
  return {
    name: 'every mode records the same swap: stored answer and GetSwap alike',
    ok:
      odd.length === 0 &&
      moved.assignments?.length === ROWS_PER_SWAP.assignmentsMoved &&
      moved.calls?.length === ROWS_PER_SWAP.callsMoved,
    detail:
      odd.length === 0
        ? `${shapes.map((s) => s.mode).join(', ')}: ${moved.assignments?.length} assignments and ${moved.calls?.length} calls moved`
        : `${odd.map((s) => s.mode).join(', ')} differ from ${first.mode}: ${first.stored} vs ${odd[0]!.stored} (read back: ${odd[0]!.read})`,
  };
}

/** The swap as a string that does not depend on which pair it was, or when. */
function shapeOf(swap: Swap | undefined, pair: SwapPair, actor: string): string {
  if (!swap) return 'missing';
  const who = (id: string) => (id === pair.a ? 'A' : id === pair.b ? 'B' : id && 'someone else');
  const day = (date: string) => (date ? `day ${daysBetween(pair.weekA, date)}` : '');
  return JSON.stringify({
    swap: [who(swap.sourceFacultyId), day(swap.sourceWeek), who(swap.targetFacultyId)],
    to: day(swap.targetWeek),
    kind: [swap.swapType, swap.status, swap.reason, swap.version],
    by: [swap.requestedBy === actor, swap.executedBy === actor],
    executedOnRequest:
      swap.requestedAt !== undefined && swap.executedAt?.getTime() === swap.requestedAt.getTime(),
    rolledBack: [swap.rolledBackAt ?? null, swap.rolledBackBy, swap.rollbackReason],
    assignments: swap.movedAssignments
      .map((m) =>
        [
          day(m.blockDate),
          m.blockHalf,
          m.rotation,
          who(m.fromPersonId),
          who(m.toPersonId),
          m.version,
        ].join(' '),
      )
      .sort(),
    calls: swap.movedCalls
      .map((m) =>
        [day(m.date), m.callType, who(m.fromPersonId), who(m.toPersonId), m.version].join(' '),
      )
      .sort(),
    warnings: swap.warnings.map((w) => w.reason),
  });
}

function getSwap(clients: ServiceClients, swapId: string): Promise<Swap | undefined> {
  return new Promise((resolve, reject) =>
    clients.swaps.getSwap({ swapId }, clients.metadata(), clients.deadline(), (error, answer) =>
      error ? reject(error) : resolve(answer.swap),
    ),
  );
}

/**
 * Every child-process mode with telemetry on exported at least one span per
 * swap it committed; `telemetry-off`, with its SDK disabled, exported nothing.
 */
export function checkTelemetryExport(
  sinks: ReadonlyMap<BenchMode, OtlpSink>,
  swapsOf: (mode: BenchMode) => number,
): CheckResult {
  const parts: string[] = [];
  let ok = sinks.size > 0;
  for (const [mode, sink] of sinks) {
    const got = sink.counts();
    if (mode === 'telemetry-off') {
      ok &&= got.bytes === 0;
      parts.push(`${mode}: ${got.traceExports} trace and ${got.metricExports} metric exports`);
      continue;
    }
    const swaps = swapsOf(mode);
    const perSwap = (n: number) => (n / Math.max(1, swaps)).toFixed(1);
    ok &&= swaps > 0 && got.spans >= swaps;
    parts.push(
      `${mode}: ${got.spans} spans (${perSwap(got.spans)} per swap) in ${got.traceExports} trace exports, ` +
        `${got.metricExports} metric exports, ${perSwap(got.bytes / 1e3)} kB per swap`,
    );
  }
  return {
    name: 'telemetry: each mode with it on exported every swap, telemetry-off nothing',
    ok,
    detail: parts.join('; ') || 'no sink',
  };
}
