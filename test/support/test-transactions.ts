import type { MikroORM } from '@mikro-orm/postgresql';
import { TransactionRunner, type TransactionSettings } from '../../src/db/transaction-runner';
import { createServiceTelemetry } from '../../src/observability/service-telemetry';

/** Few attempts and short backoff, so a test that provokes failures ends quickly. */
const QUICK: TransactionSettings = {
  maxAttempts: 2,
  backoffBaseMs: 1,
  backoffMaxMs: 5,
  timeoutCeilingMs: 5_000,
};

/** A transaction runner on `orm` for tests that drive the toolkit directly. */
export function testTransactionRunner(
  orm: MikroORM,
  overrides: Partial<TransactionSettings> = {},
): TransactionRunner {
  return new TransactionRunner(orm, { ...QUICK, ...overrides }, createServiceTelemetry());
}
