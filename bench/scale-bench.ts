import pg from 'pg';
import { addDays } from '../src/domain/calendar';
import type { ConflictType } from '../src/generated/swap/v1/conflict';
import { SwapView } from '../src/generated/swap/v1/swap';
import { swapPageToken } from '../src/swaps/swap-queries';
import { generateBigProgram } from './big-program';
import { createBenchDatabase } from './bench-database';
import { BenchIdentity } from './bench-identity';
import type { BenchOptions } from './bench-options';
import { percentile, renderTable } from './bench-report';
import { startOtlpSink } from './otlp-sink';
import { runLoad, runWorkers } from './load-runner';
import { startMode, type ServiceClients } from './swap-modes';
import { seedSwapPairs } from './swap-pairs';

/** Swap pairs the c=1 load cycles through; the big program's faculty include them. */
const LOAD_PAIRS = 16;
/** Each read figure: this long at c=1, after a warm-up of a tenth of it. */
const READ_MS = 3_000;
/** Full-year scans per program, each after its alerts were deleted, so each raises them anew. */
const DETECT_RUNS = 8;
/** How deep the deep ListSwaps page starts: this far into the history, newest first. */
const DEEP_FRACTION = 0.5;

/** What one program measured: latencies per figure, in ms. */
interface ProgramRun {
  name: string;
  detail: string;
  figures: Map<string, number[]>;
  alertsInYear: number;
}

export interface ScaleBenchResult {
  lines: string[];
  ok: boolean;
}

/**
 * The scale bench: the service (service-redis, in this process, over gRPC) on
 * the bench's small seed and on the big program of issue 14 (228 faculty, ten
 * academic years, a million swap records and idempotency keys), each in a
 * database of its own, with the same figures side by side: ExecuteSwap at
 * c=1, ListSwaps' first page and a page half-way down the history,
 * DetectConflicts over a full year, and GetResolutionOptions for a
 * LEAVE_FMIT_OVERLAP alert (every faculty member a candidate, each judged).
 */
export async function runScaleBench(
  options: BenchOptions,
  keyPrefix: string,
  say: (line: string) => void,
): Promise<ScaleBenchResult> {
  const identity = await BenchIdentity.create();
  try {
    const small = await measureProgram('small seed', false, options, keyPrefix, identity, say);
    const big = await measureProgram('big program', true, options, keyPrefix, identity, say);
    return { lines: report(small, big), ok: true };
  } finally {
    identity.remove();
  }
}

async function measureProgram(
  name: string,
  grow: boolean,
  options: BenchOptions,
  keyPrefix: string,
  identity: BenchIdentity,
  say: (line: string) => void,
): Promise<ProgramRun> {
  const db = await createBenchDatabase(options.adminUrl);
  const admin = new pg.Client({ connectionString: db.url });
  await admin.connect();
  say(`scale: ${name} in ${db.name}`);
  try {
    const pairs = await seedSwapPairs(admin, LOAD_PAIRS);
    const [probe] = await seedSwapPairs(admin, 1, LOAD_PAIRS);
    let detail = `${LOAD_PAIRS + 1} swap pairs`;
    let year = { from: addDays(pairs[0]!.weekA, -7), to: addDays(pairs[0]!.weekA, 7 * 51) };
    if (grow) {
      const program = await generateBigProgram(admin, pairs[0]!.weekA, say);
      year = program.lastYear;
      detail =
        `${Object.entries(program.rows)
          .map(([k, v]) => `${v} ${k}`)
          .join(', ')}; ` +
        `weeks ${program.firstWeek}..${program.lastWeek}, generated in ${(program.elapsedMs / 1000).toFixed(0)} s`;
    }
    say(`scale: ${name}: ${detail}`);
    // service-redis runs as production starts it, exporting to a sink of its own.
    const sink = await startOtlpSink();
    const mode = await startMode('service-redis', options, {
      databaseUrl: db.url,
      keyPrefix,
      sinks: new Map([['service-redis', sink]]),
      identity,
      pki: undefined,
    }).catch(async (error: unknown) => {
      await sink.close();
      throw error;
    });
    try {
      const clients = mode.clients!;
      const figures = new Map<string, number[]>();
      const load = { concurrency: 1, database: db.name };
      await admin.query('vacuum (analyze) assignment, call_assignment, faculty_week, swap_record');
      await runLoad(mode.execute, pairs, { ...load, durationMs: options.jitWarmupMs });
      const swaps = await runLoad(mode.execute, pairs, { ...load, durationMs: options.measureMs });
      figures.set('ExecuteSwap c=1', swaps.latenciesMs);
      say(`scale: ${name}: ${swaps.swaps} swaps, ${swaps.failures} failed`);

      figures.set('ListSwaps first page', await timed(() => listSwaps(clients, '')));
      figures.set(
        'ListSwaps first page, basic',
        await timed(() => listSwaps(clients, '', SwapView.SWAP_VIEW_BASIC)),
      );
      const history = await admin.query<{ n: number }>(
        'select count(*)::int as n from swap_record',
      );
      const deep = await admin.query<{ requested_at: Date; id: string }>(
        'select requested_at, id from swap_record order by requested_at desc, id desc offset $1 limit 1',
        [Math.floor(history.rows[0]!.n * DEEP_FRACTION)],
      );
      const token = swapPageToken({}, deep.rows[0]!.requested_at, deep.rows[0]!.id);
      figures.set('ListSwaps deep page', await timed(() => listSwaps(clients, token)));
      figures.set(
        'ListSwaps deep page, basic',
        await timed(() => listSwaps(clients, token, SwapView.SWAP_VIEW_BASIC)),
      );

      const scans: number[] = [];
      let alertsInYear = 0;
      for (let run = 0; run < DETECT_RUNS; run++) {
        await admin.query('delete from conflict_alert where week_start between $1 and $2', [
          year.from,
          year.to,
        ]);
        const t0 = performance.now();
        alertsInYear = (await detect(clients, year.from, year.to)).length;
        scans.push(performance.now() - t0);
      }
      figures.set('DetectConflicts, a year', scans);

      // A blocking absence over the probe pair's first FMIT week: one alert whose
      // options judge every faculty member of the program as a stand-in.
      await admin.query(
        `insert into absence (id, person_id, start_date, end_date, type, blocking)
         values (gen_random_uuid(), $1, $2::date + 1, $2::date + 2, 'tdy', true)`,
        [probe!.a, probe!.weekA],
      );
      const [alert] = (await detect(clients, probe!.weekA, probe!.weekA)).filter(
        (c) => c.facultyId === probe!.a,
      );
      if (!alert) throw new Error(`${name}: the planted absence raised no alert`);
      figures.set('GetResolutionOptions', await timed(() => resolutionOptions(clients, alert.id)));
      return { name, detail, figures, alertsInYear };
    } finally {
      await mode.stop();
      await sink.close();
    }
  } finally {
    await admin.end().catch(() => undefined);
    await db.drop();
    say(`scale: ${db.name} dropped`);
  }
}

/** Latencies of `call` at c=1 for READ_MS, after a warm-up. */
async function timed(call: () => Promise<unknown>): Promise<number[]> {
  const attempt = async () => {
    await call();
    return true;
  };
  await runWorkers(1, READ_MS / 10, () => attempt);
  const run = await runWorkers(1, READ_MS, () => attempt);
  if (run.failures > 0) throw new Error(`scale: ${run.errors.join(' | ')}`);
  return run.latenciesMs;
}

function listSwaps(
  clients: ServiceClients,
  pageToken: string,
  view = SwapView.SWAP_VIEW_FULL,
): Promise<number> {
  return new Promise((resolve, reject) =>
    clients.swaps.listSwaps(
      { pageSize: 50, pageToken, facultyId: '', weekFrom: '', weekTo: '', status: 0, view },
      clients.metadata(),
      clients.deadline(),
      (error, answer) => (error ? reject(error) : resolve(answer.swaps.length)),
    ),
  );
}

function detect(
  clients: ServiceClients,
  weekFrom: string,
  weekTo: string,
): Promise<Array<{ id: string; facultyId: string; type: ConflictType }>> {
  return new Promise((resolve, reject) =>
    clients.conflicts.detectConflicts(
      { weekFrom, weekTo },
      clients.metadata(),
      clients.deadline(),
      (error, answer) => (error ? reject(error) : resolve(answer.created)),
    ),
  );
}

function resolutionOptions(clients: ServiceClients, conflictId: string): Promise<number> {
  return new Promise((resolve, reject) =>
    clients.conflicts.getResolutionOptions(
      { conflictId },
      clients.metadata(),
      clients.deadline(),
      (error, answer) => (error ? reject(error) : resolve(answer.options.length)),
    ),
  );
}

function report(small: ProgramRun, big: ProgramRun): string[] {
  const cell = (values: readonly number[] | undefined) =>
    values && values.length > 0
      ? `${percentile(values, 50).toFixed(2)} / ${percentile(values, 99).toFixed(2)} (n=${values.length})`
      : '-';
  const rows = [...small.figures.keys()].map((figure) => {
    const [s, b] = [small.figures.get(figure), big.figures.get(figure)];
    const ratio = s && b ? (percentile(b, 50) / percentile(s, 50)).toFixed(2) : '-';
    return [figure, cell(s), cell(b), ratio];
  });
  return [
    'scale bench: service-redis (a child process, as production runs it, full sampling to a sink) over gRPC, c=1; p50 / p99 in ms',
    `  ${small.name}: ${small.detail}`,
    `  ${big.name}: ${big.detail}`,
    `  DetectConflicts over a year raised ${small.alertsInYear} alerts on the ${small.name}, ${big.alertsInYear} on the ${big.name}`,
    "  (each scan after that year's alerts were deleted); ListSwaps pages of 50, the deep one half-way down the history,",
    '  in the full view (moves included) and the basic one (SWAP_VIEW_BASIC: no moves)',
    '',
    renderTable(['figure', small.name, big.name, 'big ÷ small (p50)'], rows),
  ];
}
