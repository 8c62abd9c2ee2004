import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { runChaos } from './chaos/chaos-runner';
import { FAULT_KINDS } from './chaos/faults';

/**
 * The chaos suite's short form, as CI runs it: two replicas built and started
 * as production starts them, their own PostgreSQL and Redis behind fault
 * proxies, the mixed workload for 25 s with one fault of every kind, and the
 * history checked. `npm run chaos` is the long form.
 */

const historyFile = path.join(os.tmpdir(), `swap-chaos-short-${process.pid}.jsonl`);

afterAll(async () => {
  await rm(historyFile, { force: true });
});

it(
  'a short chaos run with a fault of every kind passes every check',
  { timeout: 900_000 },
  async () => {
    const outcome = await runChaos({
      durationMs: 25_000,
      replicas: 2,
      clients: 6,
      faultsPerKind: 1,
      groups: 10,
      historyFile,
      skipBuild: false,
      skipChecks: new Set(),
      log: () => undefined,
    });
    // The report names every anomaly, so a failure says what went wrong.
    expect(
      outcome.results.filter((r) => !r.passed),
      outcome.report,
    ).toEqual([]);
    expect(outcome.operations).toBeGreaterThan(0);
    // A fault can find its target down because of another and be skipped; most kinds must land.
    const injected = FAULT_KINDS.filter((kind) => (outcome.faults[kind] ?? 0) > 0);
    expect(injected.length, outcome.report).toBeGreaterThanOrEqual(FAULT_KINDS.length - 2);
  },
);
