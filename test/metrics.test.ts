import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { credentials, type ServiceError, status } from '@grpc/grpc-js';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { SwapServiceClient } from '../src/generated/swap/v1/swap';
import { parsePrometheusText, type Scrape, scrape } from './support/prometheus-text';
import { deadlockWith } from './support/provoke-deadlock';
import { TEST_REDIS_URL } from './support/redis-url';
import { failure } from './support/grpc-outcomes';
import { ScheduleFixture } from './support/schedule-fixture';
import { freePort, type ServiceProcess, startServiceProcess } from './support/service-process';
import { backendPid, connect, waitFor } from './support/sql-fixtures';
import { fmitSwapPair } from './support/swap-pair';
import { createTestDatabase, type TestDatabase } from './support/test-database';
import { errorDetails, swapApi, type SwapApi } from './support/test-service';

/**
 * The Prometheus endpoint of the service as it runs in production (its own
 * process, telemetry preloaded), scraped before and after known calls: each
 * counter must move by exactly what the calls did. Last, the Grafana
 * dashboard's queries are checked against the names that scrape exposed.
 */

const DASHBOARD = path.resolve(__dirname, '../deploy/grafana-dashboard.json');
const ALERT_RULES = path.resolve(__dirname, '../deploy/k8s/monitoring/prometheusrule.yaml');
/** Labels Prometheus itself adds (or the histogram has), not the service. */
const SCRAPE_LABELS = new Set(['job', 'instance', 'le']);
// The child runs on the real clock, so every week lies years ahead of it.
const W1 = '2031-06-02';
const W2 = '2031-06-16';

let db: TestDatabase;
let service: ServiceProcess | undefined;
let metricsPort: number;
let keyPrefix: string;
let fx: ScheduleFixture;
let client: SwapServiceClient;
let api: SwapApi;
let redis: Redis;

beforeAll(async () => {
  db = await createTestDatabase();
  metricsPort = await freePort();
  keyPrefix = `mt${db.name.slice(-10)}`;
  service = await startServiceProcess({
    DATABASE_URL: db.url,
    REDIS_URL: TEST_REDIS_URL,
    LOCK_KEY_PREFIX: keyPrefix,
    // Short leases, so a lease whose keys vanish notices within half a second.
    LOCK_TTL_MS: '1500',
    METRICS_PORT: String(metricsPort),
  });
  fx = await ScheduleFixture.connect(db.url);
  client = new SwapServiceClient(`127.0.0.1:${service.port}`, credentials.createInsecure());
  api = swapApi(client);
  redis = new Redis(TEST_REDIS_URL);
});

afterAll(async () => {
  client?.close();
  await service?.stop();
  redis?.disconnect();
  await fx?.close();
  await db?.drop();
});

/** Two faculty, each holding an FMIT week, and the request that swaps them. */
const swapPair = () => fmitSwapPair(fx, { sourceWeek: W1, targetWeek: W2, reason: 'metrics' });

/** How much each series moved between two scrapes (a series absent before counts from 0). */
function moved(before: Scrape, after: Scrape) {
  return (name: string, labels: Record<string, string> = {}) =>
    after.sum(name, labels) - before.sum(name, labels);
}

describe('Prometheus metrics of a running service', () => {
  it('counts a known run of calls exactly', async () => {
    const pairs = [await swapPair(), await swapPair(), await swapPair()];
    const idle = await fx.faculty('core');
    const before = await scrape(metricsPort);

    const firstRequestId = randomUUID();
    const executed = [
      await api.executeSwap(pairs[0]!.request(firstRequestId)),
      await api.executeSwap(pairs[1]!.request()),
      await api.executeSwap(pairs[2]!.request()),
    ];
    // The same request again: answered from the stored response, nothing runs.
    const replayed = await api.executeSwap(pairs[0]!.request(firstRequestId));
    expect(replayed.swap?.id).toBe(executed[0]!.swap?.id);
    // Someone with nothing in the week gives it away: NO_ASSIGNMENTS.
    const rejected = await failure(
      api.executeSwap({ ...pairs[0]!.request(), sourceFacultyId: idle }),
    );
    expect(rejected.code).toBe(status.FAILED_PRECONDITION);
    expect(errorDetails(rejected).reason).toBe('NO_ASSIGNMENTS');
    await api.rollbackSwap({
      swapId: executed[1]!.swap!.id,
      reason: 'metrics rollback',
      requestId: randomUUID(),
    });

    const after = await scrape(metricsPort);
    const delta = moved(before, after);
    // Units of work: three swaps, the rollback commit, the audit rows of the
    // replay and of the refusal, each in a transaction of its own, and the
    // rejected swap: its change rolled back (rejected), then its refusal
    // committed as its key's answer; the replay runs no change, and the
    // rollback's read of the swap is one statement, outside any transaction.
    expect(delta('swap_transactions_total', { outcome: 'committed' })).toBe(7);
    expect(delta('swap_transactions_total', { outcome: 'rejected' })).toBe(1);
    expect(delta('swap_transactions_total', { outcome: 'failed' })).toBe(0);
    expect(delta('swap_transactions_total')).toBe(8);
    expect(delta('swap_transaction_duration_seconds_count')).toBe(8);
    expect(delta('swap_transaction_duration_seconds_count', { outcome: 'committed' })).toBe(7);
    expect(delta('swap_transaction_duration_seconds_bucket', { le: '+Inf' })).toBe(8);
    expect(delta('swap_transaction_retries_total')).toBe(0);

    const execute = { operation: 'execute', swap_type: 'ONE_TO_ONE' };
    expect(delta('swap_swaps_total', { ...execute, outcome: 'ok' })).toBe(3);
    expect(delta('swap_swaps_total', { ...execute, outcome: 'replayed' })).toBe(1);
    expect(delta('swap_swaps_total', { ...execute, outcome: 'no_assignments' })).toBe(1);
    expect(
      delta('swap_swaps_total', { operation: 'rollback', swap_type: 'ONE_TO_ONE', outcome: 'ok' }),
    ).toBe(1);
    expect(delta('swap_swaps_total')).toBe(6);
    expect(delta('swap_idempotent_replays_total', { method: 'ExecuteSwap' })).toBe(1);
    expect(delta('swap_idempotent_replays_total')).toBe(1);

    // Every call takes its locks once, on Redis: the replay too, since its
    // cached answer is asked for while the locks are taken.
    expect(delta('swap_lock_wait_seconds_count', { backend: 'redis', outcome: 'acquired' })).toBe(
      6,
    );
    expect(delta('swap_lock_wait_seconds_count')).toBe(6);

    for (const state of ['in_use', 'idle', 'waiting']) {
      expect(after.find('swap_db_pool_connections', { state }), state).toHaveLength(1);
    }
    expect(after.sum('swap_db_pool_connections', { state: 'waiting' })).toBe(0);
    expect(after.find('swap_circuit_breaker_state', { breaker: 'redis' })).toHaveLength(1);
    expect(after.sum('swap_circuit_breaker_state', { breaker: 'redis' })).toBe(0);
    expect(after.types.get('swap_transactions_total') ?? after.types.get('swap_transactions')).toBe(
      'counter',
    );
    expect(after.types.get('swap_transaction_duration_seconds')).toBe('histogram');

    // rpc.server.call.duration (RPC semantic conventions), by method and status, with its unit suffix.
    const rpc = (method: string, code: string) =>
      delta('rpc_server_call_duration_seconds_count', {
        rpc_system_name: 'grpc',
        rpc_method: `swap.v1.SwapService/${method}`,
        rpc_status_code: code,
      });
    expect(rpc('ExecuteSwap', 'OK')).toBe(4);
    expect(rpc('ExecuteSwap', 'FAILED_PRECONDITION')).toBe(1);
    expect(rpc('RollbackSwap', 'OK')).toBe(1);
    expect(delta('rpc_server_call_duration_seconds_count')).toBe(6);
    expect(after.types.get('rpc_server_call_duration_seconds')).toBe('histogram');
    // The deprecated label names are gone.
    for (const series of after.find('rpc_server_call_duration_seconds_count')) {
      expect(Object.keys(series.labels)).not.toContain('rpc_response_status_code');
      expect(Object.keys(series.labels)).not.toContain('rpc_grpc_status_code');
    }
    // pg's db.client.operation.duration, now named for its unit.
    expect(delta('db_client_operation_duration_seconds_count')).toBeGreaterThan(0);
    expect(after.names().has('db_client_operation_duration_count')).toBe(false);
  });

  it('exposes the Node.js runtime: event loop, heap, GC and CPU', async () => {
    const first = await scrape(metricsPort);
    const names = first.names();
    for (const name of [
      'nodejs_eventloop_delay_p99_seconds',
      'nodejs_eventloop_utilization_ratio',
      'v8js_memory_heap_used_bytes',
      'process_cpu_time_seconds_total',
    ]) {
      expect(names.has(name), name).toBe(true);
    }
    // GC pauses are a histogram by collection type; a forced allocation burst makes some.
    expect(names.has('v8js_gc_duration_seconds_bucket')).toBe(true);
    expect(first.sum('v8js_memory_heap_used_bytes')).toBeGreaterThan(0);
    expect(first.sum('process_cpu_time_seconds_total', { cpu_mode: 'user' })).toBeGreaterThan(0);
  });

  it('counts a deadlock retry by reason', async () => {
    let victim: 'service' | 'test' | undefined;
    let before: Scrape | undefined;
    let after: Scrape | undefined;
    // PostgreSQL aborts whichever side checks for the deadlock first: normally
    // the swap, which waited first; if the test's side was chosen, go again.
    for (let round = 0; round < 3 && victim !== 'service'; round++) {
      const pair = await swapPair();
      await fx.db.query(
        `insert into faculty_week (id, person_id, week_start) values ($1, $2, $3)
         on conflict (person_id, week_start) do nothing`,
        [randomUUID(), pair.source, W1],
      );
      before = await scrape(metricsPort);
      const outcome = await deadlockWith({
        url: db.url,
        database: db.name,
        assignmentId: pair.sourceAssignments[0]!,
        facultyWeek: { personId: pair.source, week: W1 },
        call: () => api.executeSwap(pair.request()),
      });
      victim = outcome.victim;
      expect(outcome.result.ok, String(!outcome.result.ok && outcome.result.error)).toBe(true);
      after = await scrape(metricsPort);
    }
    expect(victim, 'the swap was chosen as the deadlock victim').toBe('service');
    const delta = moved(before!, after!);
    expect(delta('swap_transaction_retries_total', { reason: 'deadlock_detected' })).toBe(1);
    expect(delta('swap_transaction_retries_total')).toBe(1);
    // One unit of work, two attempts: it still counts once, as committed.
    expect(delta('swap_transactions_total', { outcome: 'committed' })).toBe(1);
    expect(delta('swap_transactions_total')).toBe(1);
  });

  it('counts a lease lost while its swap waits in the database', async () => {
    const pair = await swapPair();
    const before = await scrape(metricsPort);
    const blocker = await connect(db.url);
    const observer = await connect(db.url);
    let stale: ServiceError | undefined;
    try {
      const blockerPid = await backendPid(blocker);
      await blocker.query('begin');
      await blocker.query('select id from assignment where id = $1 for update', [
        pair.sourceAssignments[0],
      ]);
      const call = failure(api.executeSwap(pair.request()));
      await waitFor('the swap to wait on the held assignment row', async () => {
        const { rows } = await observer.query(
          `select pid from pg_stat_activity
            where datname = $1 and wait_event_type = 'Lock' and $2 = any(pg_blocking_pids(pid))`,
          [db.name, blockerPid],
        );
        return rows.length === 1;
      });
      // What an expiry during a long pause looks like: the lease's keys vanish.
      const keys = await redis.keys(`{${keyPrefix}}:lock:*`);
      expect(keys).toHaveLength(4);
      await redis.del(...keys);
      await waitFor(
        'the lease to notice it was lost',
        async () =>
          (await scrape(metricsPort)).sum('swap_locks_lost_total') >
          before.sum('swap_locks_lost_total'),
      );
      await blocker.query('rollback');
      stale = await call;
    } finally {
      await blocker.end();
      await observer.end();
    }
    expect(stale.code).toBe(status.ABORTED);
    expect(errorDetails(stale).reason).toBe('LOCK_LOST');
    const after = await scrape(metricsPort);
    expect(after.sum('swap_locks_lost_total') - before.sum('swap_locks_lost_total')).toBe(1);
  });

  it('the Grafana dashboard queries only metrics the service exposes, and all of its own', async () => {
    // Runs last, so the scrape holds every series the calls above made exist.
    const exposed = (await scrape(metricsPort)).names();
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
    const queries = dashboardQueries(dashboard);
    expect(queries.length).toBeGreaterThanOrEqual(8);

    const queried = new Set(queries.flatMap(metricNamesIn));
    expect([...queried].filter((name) => !exposed.has(name)).sort()).toEqual([]);
    // Every family of the service's own is on the dashboard somewhere.
    const families = [...exposed]
      .filter((name) => name.startsWith('swap_'))
      .map((name) => name.replace(/_(bucket|count|sum)$/, ''));
    const charted = [...queried].map((name) => name.replace(/_(bucket|count|sum)$/, ''));
    expect([...new Set(families)].filter((f) => !charted.includes(f)).sort()).toEqual([]);

    // Every panel reads the data source chosen in the ${DS_PROMETHEUS} variable.
    const variable = dashboard.templating?.list?.find((v) => v.name === 'DS_PROMETHEUS');
    expect(variable).toMatchObject({ type: 'datasource', query: 'prometheus' });
    for (const panel of panelsOf(dashboard).filter((p) => p.targets?.length)) {
      expect(panel.datasource?.uid, panel.title).toBe('${DS_PROMETHEUS}');
    }
  });
});

describe('alert rules against a real scrape', () => {
  it('every alert reads metrics and labels the service exposes', async () => {
    const exposed = await scrape(metricsPort);
    const rule = parseYaml(readFileSync(ALERT_RULES, 'utf8')) as PrometheusRule;
    const alerts = rule.spec.groups.flatMap((g) => g.rules).filter((r) => r.alert);
    expect(alerts.map((a) => a.alert).sort()).toEqual([
      'SwapServiceCircuitBreakerOpen',
      'SwapServiceIdempotencySweeperStalled',
      'SwapServiceLockLost',
      'SwapServiceMethodErrorRatio',
      'SwapServiceMethodLatencyP99',
      'SwapServiceTransactionRetriesExhausted',
    ]);
    for (const { alert, expr } of alerts) {
      const names = metricNamesIn(expr);
      expect(names.length, alert).toBeGreaterThan(0);
      expect(
        names.filter((n) => !exposed.names().has(n)),
        alert,
      ).toEqual([]);
      // Every label a selector matches on or an aggregation keeps is one the series carry.
      const carried = new Set(
        names.flatMap((n) => exposed.find(n).flatMap((sample) => Object.keys(sample.labels))),
      );
      const used = labelNamesIn(expr).filter((l) => !SCRAPE_LABELS.has(l));
      expect(
        used.filter((l) => !carried.has(l)),
        alert,
      ).toEqual([]);
    }
  });
});

describe('metric-name extraction from PromQL', () => {
  it('finds metric names, not functions, labels, durations or variables', () => {
    expect(
      metricNamesIn(
        'histogram_quantile(0.99, sum by (le, backend) (rate(a_bucket{x=~"$v", y="b_total"}[$__rate_interval])))',
      ),
    ).toEqual(['a_bucket']);
    expect(
      metricNamesIn('sum(rate(a_total{o="c"}[5m])) / ignoring(o) group_left sum(b) > bool 1e-3'),
    ).toEqual(['a_total', 'b']);
    expect(metricNamesIn('label_values(c{job=~"$job"}, instance)')).toEqual(['c']);
    expect(metricNamesIn('label_values(job)')).toEqual([]);
  });

  it('reads a scrape, escapes and all', () => {
    const parsed = parsePrometheusText(
      [
        '# HELP m_total A counter',
        '# TYPE m_total counter',
        'm_total{a="x",b="q\\"uo}te"} 3',
        'm_total{a="y"} 4 1700000000000',
        'h_bucket{le="+Inf"} 2',
        'plain 1.5e3',
      ].join('\n'),
    );
    expect(parsed.sum('m_total')).toBe(7);
    expect(parsed.find('m_total', { b: 'q"uo}te' })).toHaveLength(1);
    expect(parsed.sum('h_bucket', { le: '+Inf' })).toBe(2);
    expect(parsed.sum('plain')).toBe(1500);
    expect(parsed.types.get('m_total')).toBe('counter');
  });
});

interface PrometheusRule {
  spec: { groups: { name: string; rules: { alert?: string; expr: string }[] }[] };
}

/** Label names in selectors (`{a="x"}`) and in `by`/`without` lists. */
function labelNamesIn(expr: string): string[] {
  const labels = new Set<string>();
  const unquoted = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  for (const block of unquoted.matchAll(/\{([^}]*)\}/g)) {
    for (const m of block[1]!.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)/g))
      labels.add(m[1]!);
  }
  for (const list of unquoted.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)) {
    for (const name of list[1]!.split(',')) if (name.trim()) labels.add(name.trim());
  }
  // Alert annotations' {{ $labels.x }} are templates, not PromQL; only the expression is read.
  return [...labels];
}

interface Panel {
  title?: string;
  datasource?: { uid?: string };
  targets?: { expr?: string }[];
  panels?: Panel[];
}
interface Dashboard {
  panels?: Panel[];
  templating?: {
    list?: { name: string; type: string; query?: string | { query?: string } }[];
  };
}

function panelsOf(dashboard: Dashboard): Panel[] {
  const all: Panel[] = [];
  const visit = (panels: Panel[] | undefined) => {
    for (const panel of panels ?? []) {
      all.push(panel);
      visit(panel.panels);
    }
  };
  visit(dashboard.panels);
  return all;
}

/** Every PromQL expression of the dashboard: panel targets and query variables. */
function dashboardQueries(dashboard: Dashboard): string[] {
  const exprs = panelsOf(dashboard).flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? ''));
  for (const variable of dashboard.templating?.list ?? []) {
    if (variable.type !== 'query') continue;
    const query = typeof variable.query === 'string' ? variable.query : variable.query?.query;
    if (query) exprs.push(query);
  }
  return exprs.filter((e) => e.trim() !== '');
}

const PROMQL_KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'and',
  'or',
  'unless',
  'offset',
  'inf',
  'nan',
]);

/**
 * The metric names a PromQL expression (or a Grafana `label_values` query)
 * reads: what is left once strings, label matchers, ranges, label lists,
 * Grafana variables, numbers, keywords and function calls are set aside.
 */
function metricNamesIn(expr: string): string[] {
  const labelValues = /^\s*label_values\((.*)\)\s*$/s.exec(expr);
  if (labelValues) {
    const args = labelValues[1]!;
    const lastComma = args.lastIndexOf(',');
    // label_values(label) reads no metric; label_values(selector, label) reads the selector's.
    return lastComma < 0 ? [] : metricNamesIn(args.slice(0, lastComma));
  }
  const text = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\$\{[^}]*\}|\$\w+/g, ' ');
  const names: string[] = [];
  for (const match of text.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const word = match[0];
    const at = match.index;
    if (at > 0 && /[0-9.]/.test(text[at - 1]!)) continue; // the exponent of a number
    if (PROMQL_KEYWORDS.has(word.toLowerCase())) continue;
    if (
      text
        .slice(at + word.length)
        .trimStart()
        .startsWith('(')
    )
      continue; // a function
    if (!names.includes(word)) names.push(word);
  }
  return names;
}
