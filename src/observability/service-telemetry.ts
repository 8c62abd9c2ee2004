import {
  type Attributes,
  type Counter,
  type Histogram,
  type Meter,
  metrics,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import { METRIC_RPC_SERVER_CALL_DURATION } from '@opentelemetry/semantic-conventions';

/** Instrumentation scope of everything the service records itself. */
export const INSTRUMENTATION_SCOPE = 'swap-service';

/**
 * The service's own tracer and metric instruments. They come from the global
 * OpenTelemetry API, so they cost next to nothing (no-ops) when the SDK is not
 * started. The Prometheus names (after the exporter adds `_total` to counters)
 * are what deploy/grafana-dashboard.json queries.
 */
export interface ServiceTelemetry {
  tracer: Tracer;
  /** swap_transactions_total{outcome}: units of work by how they ended (see TRANSACTION_OUTCOMES). */
  transactions: Counter<Attributes>;
  /** swap_transaction_retries_total{reason}. */
  retries: Counter<Attributes>;
  /** swap_transaction_duration_seconds{outcome}: whole units of work, all attempts. */
  transactionDuration: Histogram<Attributes>;
  /** swap_lock_wait_seconds{backend,outcome}. */
  lockWait: Histogram<Attributes>;
  /** swap_locks_lost_total. */
  locksLost: Counter<Attributes>;
  /** swap_idempotent_replays_total{method}. */
  replays: Counter<Attributes>;
  /** swap_swaps_total{operation,swap_type,outcome}. */
  swaps: Counter<Attributes>;
  /** rpc_server_call_duration_seconds{rpc_method,rpc_status_code}: every call, by method and status (RPC semantic conventions). */
  rpcDuration: Histogram<Attributes>;
  meter: Meter;
}

const SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * Builds the instruments once, for the composition root to pass to whatever
 * records. From the global API unless a meter and tracer are given.
 */
export function createServiceTelemetry(
  meter: Meter = metrics.getMeter(INSTRUMENTATION_SCOPE),
  tracer: Tracer = trace.getTracer(INSTRUMENTATION_SCOPE),
): ServiceTelemetry {
  const seconds = { unit: 's', advice: { explicitBucketBoundaries: SECONDS_BUCKETS } };
  const telemetry: ServiceTelemetry = {
    tracer,
    meter,
    transactions: meter.createCounter('swap_transactions', {
      description: 'Units of work, by outcome (committed, failed, exhausted, deadline_exceeded)',
    }),
    retries: meter.createCounter('swap_transaction_retries', {
      description: 'Transaction attempts retried, by reason',
    }),
    transactionDuration: meter.createHistogram('swap_transaction_duration_seconds', {
      description: 'Wall time of a unit of work, all attempts included',
      ...seconds,
    }),
    lockWait: meter.createHistogram('swap_lock_wait_seconds', {
      description: 'Time spent acquiring schedule locks, by backend and outcome',
      ...seconds,
    }),
    locksLost: meter.createCounter('swap_locks_lost', {
      description: 'Distributed lock leases lost while work ran under them',
    }),
    replays: meter.createCounter('swap_idempotent_replays', {
      description: 'Mutating calls answered from a stored response, by method',
    }),
    swaps: meter.createCounter('swap_swaps', {
      description: 'Swap executions and rollbacks, by swap type and outcome',
    }),
    rpcDuration: meter.createHistogram(METRIC_RPC_SERVER_CALL_DURATION, {
      description: 'Duration of gRPC calls handled, by method and status',
      ...seconds,
    }),
  };
  // Series that alerts and dashboards rate() over exist from the start, at zero,
  // rather than appearing with the first incident.
  for (const outcome of TRANSACTION_OUTCOMES) telemetry.transactions.add(0, { outcome });
  for (const reason of RETRY_REASONS) telemetry.retries.add(0, { reason });
  telemetry.locksLost.add(0);
  return telemetry;
}

/** Outcomes of a unit of work; `rejected` is a business refusal, `failed` a fault. */
export const TRANSACTION_OUTCOMES = [
  'committed',
  'rejected',
  'failed',
  'exhausted',
  'deadline_exceeded',
] as const;
const RETRY_REASONS = [
  'serialization_failure',
  'deadlock_detected',
  'lock_not_available',
  'optimistic_lock',
];

/** Numeric states of swap_circuit_breaker_state: 0 closed, 1 half-open, 2 open. */
export const BREAKER_STATE_VALUE = { closed: 0, half_open: 1, open: 2 } as const;

/**
 * Registers the gauges read at collection time: the Redis breaker's state
 * (swap_circuit_breaker_state) and the connection pool
 * (swap_db_pool_connections{state=in_use|idle|waiting}) and when the
 * idempotency sweeper last finished a sweep
 * (swap_idempotency_sweep_last_success_timestamp_seconds; the stalled-sweeper
 * alert takes max() over replicas, since one replica sweeps for all).
 */
export function observeGauges(
  telemetry: ServiceTelemetry,
  sources: {
    breakerState: (() => keyof typeof BREAKER_STATE_VALUE) | undefined;
    pool: () => { inUse: number; idle: number; waiting: number };
    /** Epoch ms of the idempotency sweeper's last completed sweep. */
    lastSweptAt: () => number;
  },
): void {
  const { meter } = telemetry;
  const breakerState = sources.breakerState;
  if (breakerState) {
    meter
      .createObservableGauge('swap_circuit_breaker_state', {
        description: 'Redis circuit breaker: 0 closed, 1 half-open, 2 open',
      })
      .addCallback((result) =>
        result.observe(BREAKER_STATE_VALUE[breakerState()], { breaker: 'redis' }),
      );
  }
  meter
    .createObservableGauge('swap_db_pool_connections', {
      description: 'Database pool connections, by state (in_use, idle, waiting)',
    })
    .addCallback((result) => {
      const pool = sources.pool();
      result.observe(pool.inUse, { state: 'in_use' });
      result.observe(pool.idle, { state: 'idle' });
      result.observe(pool.waiting, { state: 'waiting' });
    });
  meter
    .createObservableGauge('swap_idempotency_sweep_last_success_timestamp_seconds', {
      description: 'When this replica last completed an idempotency sweep (Unix seconds)',
    })
    .addCallback((result) => result.observe(sources.lastSweptAt() / 1000));
}
