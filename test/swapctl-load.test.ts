import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findDemoSwaps } from '../src/dev/demo-swaps';
import { SwapType } from '../src/generated/swap/v1/swap';
import { Connection } from '../src/swapctl/connection';
import { EXIT } from '../src/swapctl/exit-codes';
import { scheduleDifferences, snapshotSchedule } from '../src/swapctl/load-workload';
import type { LoadReport } from '../src/swapctl/load-command';
import { DEFAULT_POLICY_FILE } from './support/access-control';
import { JwtIssuer } from './support/jwt-issuer';
import { swapctl } from './support/swapctl-run';
import { startTestService, type TestService, TODAY } from './support/test-service';

describe('swapctl load', () => {
  let ts: TestService;
  let dir: string;
  beforeAll(async () => {
    ts = await startTestService({ SEED_DEMO: 'true' });
    dir = await mkdtemp(path.join(os.tmpdir(), 'swapctl-load-'));
  });
  afterAll(async () => {
    await ts?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('runs 5 s open loop: throughput, a histogram, and the schedule as it was', async () => {
    const out = path.join(dir, 'report.json');
    const before = await ts.service.orm.em
      .fork()
      .execute<Array<{ rows: string }>>(
        `select string_agg(id::text || person_id::text, ',' order by id) as rows from assignment`,
      );
    const run = await swapctl(
      ts.address,
      'load',
      '--duration',
      '5s',
      '--rate',
      '20',
      '--concurrency',
      '8',
      '--mix',
      'execute=2,validate=1,list=1',
      '--out',
      out,
    );
    expect(run.stderr).toMatch(/valid swap\(s\) to execute and roll back/);
    // The live line: elapsed, calls/s, errors, p50 and p99 so far.
    expect(run.stderr).toMatch(
      /\d+\.\ds {2}[\d.]+ calls\/s {2}ok \d+ {2}errors .+ {2}p50 [\d.]+ ms {2}p99 [\d.]+ ms/,
    );
    expect(run.stdout).toMatch(/p99\.9 ms/);
    expect(run.stdout).toMatch(/ms \| #+ \d+/);
    expect(run.stdout).toContain('consistency check: PASSED');
    expect(run.code).toBe(EXIT.ok);

    const report = JSON.parse(await readFile(out, 'utf8')) as LoadReport;
    expect(report.throughputPerSecond).toBeGreaterThan(0);
    expect(report.settings).toMatchObject({ rate: 20, concurrency: 8, openLoop: true });
    expect(report.byMethod.ExecuteSwap!.statuses.OK).toBeGreaterThan(0);
    expect(report.byMethod.RollbackSwap!.statuses.OK).toBeGreaterThan(0);
    expect(report.overall.percentilesMs['p99.9']).toBeGreaterThanOrEqual(
      report.overall.percentilesMs.p50!,
    );
    expect(report.overall.hdrBase64).toMatch(/^[A-Za-z0-9+/=]+$/);
    expect(report.consistency).toEqual({ consistent: true, differences: [], unrestored: [] });

    // And the database agrees with the API: every assignment is where it was.
    const after = await ts.service.orm.em
      .fork()
      .execute<Array<{ rows: string }>>(
        `select string_agg(id::text || person_id::text, ',' order by id) as rows from assignment`,
      );
    expect(after[0]!.rows).toBe(before[0]!.rows);
  }, 120_000);

  it('Ctrl-C stops new calls, and the schedule is still restored and checked', async () => {
    const child = spawn(
      process.execPath,
      [
        path.resolve(__dirname, '../src/swapctl/bin.cjs'),
        '--addr',
        ts.address,
        'load',
        '--duration',
        '10m',
        '--rate',
        '20',
      ],
      {
        env: { PATH: process.env.PATH, HOME: process.env.HOME },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const exited = new Promise<number | null>((resolve) =>
      child.on('exit', (code) => resolve(code)),
    );
    // The first progress line says calls are running; then interrupt.
    await new Promise<void>((resolve) => {
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        if (/calls\/s/.test(stderr)) resolve();
      });
    });
    child.kill('SIGINT');
    expect(await exited).toBe(EXIT.ok);
    expect(stderr).toContain('interrupted: finishing the calls in flight');
    expect(stdout).toContain('consistency check: PASSED');
  }, 120_000);

  it('the consistency check sees a swap that was not rolled back', async () => {
    const connection = new Connection({ addr: ts.address, deadline: '10s' });
    try {
      const before = await snapshotSchedule(connection, 8);
      const [swap] = await findDemoSwaps(ts.service.orm.em.fork(), TODAY, 1);
      const { swap: executed } = await ts.api.executeSwap({
        ...swap!,
        swapType: SwapType.SWAP_TYPE_ONE_TO_ONE,
        reason: 'left in place',
        requestId: randomUUID(),
      });
      const after = await snapshotSchedule(connection, 8, before.firstWeek);
      expect(scheduleDifferences(before, after)).toEqual(
        expect.arrayContaining([
          `${swap!.sourceFacultyId} ${swap!.sourceWeek}`,
          `${swap!.targetFacultyId} ${swap!.targetWeek}`,
        ]),
      );
      await ts.api.rollbackSwap({
        swapId: executed!.id,
        reason: 'restore',
        requestId: randomUUID(),
      });
      const restored = await snapshotSchedule(connection, 8, before.firstWeek);
      expect(scheduleDifferences(before, restored)).toEqual([]);
    } finally {
      connection.close();
    }
  });
});

describe('swapctl load when no call succeeds', () => {
  let issuer: JwtIssuer;
  let ts: TestService;
  beforeAll(async () => {
    issuer = await JwtIssuer.start();
    ts = await startTestService({
      ...issuer.env(),
      AUTHZ_POLICY_FILE: DEFAULT_POLICY_FILE,
      SEED_DEMO: 'true',
    });
  });
  afterAll(async () => {
    await ts?.close();
    await issuer?.close();
  });

  it('a viewer may read the schedule but not execute: exit 3, PERMISSION_DENIED counted', async () => {
    const token = await issuer.token('ops-carol', ['viewer']);
    const run = await swapctl(
      ts.address,
      '--token',
      token,
      'load',
      '--duration',
      '1s',
      '--rate',
      '10',
      '--mix',
      'execute=1',
    );
    expect(run.stdout).toMatch(/statuses: PERMISSION_DENIED=\d+$/m);
    expect(run.code).toBe(EXIT.loadCheckFailed);
  }, 60_000);
});
