import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DemoSwap, findDemoSwaps } from '../src/dev/demo-swaps';
import { demoPersonId } from '../src/dev/demo-year-planner';
import { EXIT, exitCodeOfStatus, exitCodeTable } from '../src/swapctl/exit-codes';
import { runSwapctl } from '../src/swapctl/swapctl';
import { DEFAULT_POLICY_FILE } from './support/access-control';
import { startBlackholeProxy } from './support/blackhole-proxy';
import { clientCredentials, createTestPki, type TestPki, tlsEnv } from './support/certificates';
import { JwtIssuer } from './support/jwt-issuer';
import { freePort } from './support/service-process';
import { npxSwapctl, swapctl } from './support/swapctl-run';
import { startTestService, type TestService, TODAY } from './support/test-service';

// Every command against a real, demo-seeded service (test clock: TODAY), in the
// table output and in --json, and the exit code of each outcome.

const FMIT_WITH_LEAVE = [
  // FMIT weeks of the demo year (TODAY's) far from the swap-ready pairs, each given a TDY.
  ['Aisha Kamara', '2030-03-25'],
  ['Nathan Price', '2030-04-15'],
  ['Daniel Reyes', '2030-05-27'],
] as const;

let ts: TestService;
let demo: DemoSwap[];
let run: (...args: string[]) => ReturnType<typeof swapctl>;

beforeAll(async () => {
  ts = await startTestService({ SEED_DEMO: 'true' });
  demo = await findDemoSwaps(ts.service.orm.em.fork(), TODAY, 3);
  run = (...args) => swapctl(ts.address, ...args);
  for (const [name, week] of FMIT_WITH_LEAVE) {
    const start = new Date(`${week}T00:00:00Z`);
    start.setUTCDate(start.getUTCDate() + 1);
    const day = start.toISOString().slice(0, 10);
    await ts.service.orm.em
      .fork()
      .execute(
        `insert into absence (id, person_id, start_date, end_date, type, blocking) values (gen_random_uuid(), ?, ?, ?, 'tdy', true)`,
        [demoPersonId(name), day, day],
      );
  }
});
afterAll(() => ts?.close());

const flagsOf = (s: DemoSwap) => [
  '--source',
  s.sourceFacultyId,
  '--source-week',
  s.sourceWeek,
  '--target',
  s.targetFacultyId,
  '--target-week',
  s.targetWeek,
];
/** What --json printed, read as the shape the test expects (proto3 JSON names). */
const json = <T = Record<string, unknown>>(text: string) => JSON.parse(text) as T;
interface JsonSwap {
  id: string;
  sourceFacultyId: string;
  swapType: string;
  status: string;
  movedAssignments: unknown[];
}
interface JsonError {
  status: string;
  reason: string;
  violations: Array<{ type: string }>;
}
interface JsonConflict {
  id: string;
  status: string;
}

describe('swapctl against a demo service', () => {
  it('health: a table of every service, and JSON', async () => {
    const table = await run('health');
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/swap\.v1\.ScheduleService\s*│\s*SERVING/);
    const out = await run('--json', 'health');
    expect(out.code).toBe(0);
    expect(json<{ services: unknown[] }>(out.stdout).services).toContainEqual({
      service: '',
      status: 'SERVING',
    });
  });

  it('faculty list: every faculty member with their FMIT weeks', async () => {
    const table = await run('faculty', 'list');
    expect(table.code).toBe(0);
    expect(table.stdout).toContain(demoPersonId('Margaret Okafor'));
    expect(table.stdout).toMatch(/Margaret Okafor\s*│\s*pd\s*│\s*\d{4}-\d\d-\d\d/);
    const out = json<{ faculty: unknown[] }>((await run('--json', 'faculty', 'list')).stdout);
    expect(out.faculty).toHaveLength(12);
    expect(out.faculty[0]).toMatchObject({
      id: demoPersonId('Aisha Kamara'),
      name: 'Aisha Kamara',
      role: 'core',
    });
  });

  it('schedule show: a week-by-week table, JSON, and what is wrong with the input', async () => {
    const [swap] = demo;
    const table = await run(
      'schedule',
      'show',
      swap!.sourceFacultyId,
      '--from',
      swap!.sourceWeek,
      '--weeks',
      '3',
    );
    expect(table.code).toBe(0);
    expect(table.stdout).toContain(swap!.sourceName);
    expect(table.stdout).toMatch(new RegExp(`${swap!.sourceWeek}\\s*│\\s*FMIT\\s*│`));
    expect(table.stdout).toMatch(/Mon\s*│\s*Tue/);
    const out = json<{ weeks: Array<{ week: string; days: unknown[] }> }>(
      (await run('--json', 'schedule', 'show', swap!.sourceFacultyId, '--weeks', '2')).stdout,
    );
    expect(out.weeks).toHaveLength(2);
    expect(out.weeks[0]!.week).toBe(TODAY);
    expect(out.weeks[0]!.days).toHaveLength(7);

    const usage = await run('schedule', 'show', swap!.sourceFacultyId, '--weeks', '27');
    expect(usage.code).toBe(EXIT.usage);
    expect(usage.stderr).toContain('--weeks must be a whole number from 1 to 26');
    const missing = await run('schedule', 'show', '00000000-0000-4000-8000-000000000000');
    expect(missing.code).toBe(exitCodeOfStatus(status.NOT_FOUND));
    expect(missing.stderr).toContain('error: NOT_FOUND');
    expect(missing.stderr).toContain('reason: FACULTY_NOT_FOUND');
    expect(missing.stderr).not.toMatch(/\bat .+:\d+:\d+/);
  });

  it('swaps: validate, execute, retry by request id, get, list, refuse, roll back (table)', async () => {
    const swap = demo[0]!;
    const valid = await run('swaps', 'validate', ...flagsOf(swap));
    expect(valid.code).toBe(0);
    expect(valid.stdout).toContain('valid: the swap breaks no rule');

    const executed = await run('swaps', 'execute', ...flagsOf(swap), '--reason', 'cli test');
    expect(executed.code).toBe(0);
    const requestId = /request_id (\S+)/.exec(executed.stderr)![1]!;
    const swapId = /│ id\s*│ (\S+)/.exec(executed.stdout)![1]!;
    expect(executed.stdout).toMatch(/status\s*│ EXECUTED/);

    const retried = await run(
      'swaps',
      'execute',
      ...flagsOf(swap),
      '--reason',
      'cli test',
      '--request-id',
      requestId,
    );
    expect(retried.code).toBe(0);
    expect(retried.stdout).toContain(swapId);
    expect(retried.stderr).toContain(`request_id ${requestId} (retry)`);

    const got = await run('swaps', 'get', swapId);
    expect(got.code).toBe(0);
    expect(got.stdout).toMatch(/moved\s*│ 28 assignments, 4 calls/);
    expect(got.stdout).toMatch(/FMIT\s*│ \S+\s*│ \S+/);

    const listed = await run(
      'swaps',
      'list',
      '--faculty',
      swap.sourceFacultyId,
      '--status',
      'executed',
    );
    expect(listed.code).toBe(0);
    expect(listed.stdout).toContain(swapId);
    expect(listed.stdout).toContain('1 swap(s)');

    // The same swap again: the source no longer holds that week.
    const invalid = await run('swaps', 'validate', ...flagsOf(swap));
    expect(invalid.code).toBe(exitCodeOfStatus(status.FAILED_PRECONDITION));
    expect(invalid.stdout).toContain('NO_ASSIGNMENTS');
    const refused = await run('swaps', 'execute', ...flagsOf(swap));
    expect(refused.code).toBe(exitCodeOfStatus(status.FAILED_PRECONDITION));
    expect(refused.stderr).toContain('error: FAILED_PRECONDITION');
    expect(refused.stderr).toMatch(/violation NO_ASSIGNMENTS \(faculty\/.+\): /);
    expect(refused.stderr).toMatch(
      /violation DOUBLE_BOOKING|violation NO_ASSIGNMENTS[\s\S]*violation NO_ASSIGNMENTS/,
    );

    const rolledBack = await run('swaps', 'rollback', swapId, '--reason', 'cli test');
    expect(rolledBack.code).toBe(0);
    expect(rolledBack.stdout).toMatch(/status\s*│ ROLLED_BACK/);
    expect(rolledBack.stdout).toMatch(/rollback reason\s*│ cli test/);
    expect((await run('swaps', 'validate', ...flagsOf(swap))).code).toBe(0);
  });

  it('swaps: the same in --json, with the request id in the answer', async () => {
    const swap = demo[0]!;
    const valid = json<{ valid: boolean }>(
      (await run('--json', 'swaps', 'validate', ...flagsOf(swap))).stdout,
    );
    // proto3 JSON leaves out empty lists.
    expect(valid).toEqual({ valid: true });
    // Later than the swap the test before made (the clock is the test's), so
    // this one is first in the list by requestedAt, not by a random id's order.
    ts.clock.advance(60_000);
    const executed = await run('--json', 'swaps', 'execute', ...flagsOf(swap));
    expect(executed.code).toBe(0);
    const answer = json<{ requestId: string; swap: JsonSwap }>(executed.stdout);
    expect(answer.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(answer.swap).toMatchObject({
      sourceFacultyId: swap.sourceFacultyId,
      swapType: 'SWAP_TYPE_ONE_TO_ONE',
      status: 'SWAP_STATUS_EXECUTED',
    });
    const got = json<{ swap: JsonSwap }>(
      (await run('--json', 'swaps', 'get', answer.swap.id)).stdout,
    );
    expect(got.swap.movedAssignments).toHaveLength(28);
    const listed = json<{ swaps: JsonSwap[]; nextPageToken: string }>(
      (await run('--json', 'swaps', 'list', '--page-size', '1')).stdout,
    );
    expect(listed.swaps).toHaveLength(1);
    expect(listed.swaps[0]!.id).toBe(answer.swap.id);
    expect(listed.nextPageToken).not.toBe('');

    const refused = await run('--json', 'swaps', 'execute', ...flagsOf(swap));
    expect(refused.code).toBe(19);
    const error = json<{ error: JsonError }>(refused.stderr).error;
    expect(error).toMatchObject({ status: 'FAILED_PRECONDITION', code: 9, exitCode: 19 });
    expect(json<{ requestId: string }>(refused.stderr).requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(error.violations.map((v) => v.type)).toContain('NO_ASSIGNMENTS');

    const rolledBack = await run(
      '--json',
      'swaps',
      'rollback',
      answer.swap.id,
      '--reason',
      'json test',
    );
    expect(json<{ swap: JsonSwap }>(rolledBack.stdout).swap.status).toBe('SWAP_STATUS_ROLLED_BACK');
  });

  it('swaps execute absorb: the target takes the week (--type absorb is the default without --target-week)', async () => {
    const swap = demo[1]!;
    const args = [
      '--source',
      swap.sourceFacultyId,
      '--source-week',
      swap.sourceWeek,
      '--target',
      swap.targetFacultyId,
    ];
    const out = json<{ swap: JsonSwap }>((await run('--json', 'swaps', 'execute', ...args)).stdout);
    expect(out.swap.swapType).toBe('SWAP_TYPE_ABSORB');
    expect((await run('swaps', 'rollback', out.swap.id, '--reason', 'absorb test')).code).toBe(0);
  });

  it('conflicts: detect, list, get, ack, ignore, options, resolve, auto-resolve', async () => {
    const detected = await run('conflicts', 'detect', '--from', '2030-03-18', '--to', '2030-06-03');
    expect(detected.code).toBe(0);
    expect(detected.stdout).toMatch(/LEAVE_FMIT_OVERLAP\s*│ CRITICAL\s*│ NEW/);
    const again = json<{ created?: unknown[] }>(
      (await run('--json', 'conflicts', 'detect', '--from', '2030-03-18', '--to', '2030-06-03'))
        .stdout,
    );
    expect(again.created ?? []).toEqual([]);

    const listed = json<{ conflicts: JsonConflict[] }>(
      (await run('--json', 'conflicts', 'list', '--type', 'leave-fmit-overlap', '--status', 'new'))
        .stdout,
    );
    expect(listed.conflicts).toHaveLength(3);
    const [first, second, third] = listed.conflicts.map((c) => c.id);
    const table = await run('conflicts', 'list', '--severity', 'critical');
    expect(table.stdout).toContain(first);
    expect(table.stdout).toContain('3 conflict(s)');

    const got = await run('conflicts', 'get', first!);
    expect(got.stdout).toMatch(/type\s*│ LEAVE_FMIT_OVERLAP/);
    expect(
      json<{ conflict: JsonConflict }>((await run('--json', 'conflicts', 'get', first!)).stdout)
        .conflict.id,
    ).toBe(first);

    const acked = await run('conflicts', 'ack', first!, '--notes', 'seen');
    expect(acked.code).toBe(0);
    expect(acked.stdout).toMatch(/status\s*│ ACKNOWLEDGED/);
    expect(acked.stderr).toMatch(/request_id \S+/);
    const ackedAgain = await run('--json', 'conflicts', 'ack', first!);
    expect(ackedAgain.code).toBe(exitCodeOfStatus(status.FAILED_PRECONDITION));
    expect(json<{ error: JsonError }>(ackedAgain.stderr).error.reason).toBe('INVALID_STATUS');

    const ignored = json<{ conflict: JsonConflict; requestId: string }>(
      (await run('--json', 'conflicts', 'ignore', second!, '--reason', 'known')).stdout,
    );
    expect(ignored.conflict.status).toBe('CONFLICT_STATUS_IGNORED');
    expect(ignored.requestId).toMatch(/^[0-9a-f-]{36}$/);

    const options = await run('conflicts', 'options', third!);
    expect(options.code).toBe(0);
    expect(options.stdout).toMatch(/option\s*│ strategy/);
    const { options: optionList } = json<{
      options: Array<{
        optionId: string;
        requiresHuman?: boolean;
        checks: Array<{ passed?: boolean }>;
      }>;
    }>((await run('--json', 'conflicts', 'options', third!)).stdout);
    const safe = optionList.find((o) => !o.requiresHuman && o.checks.every((c) => c.passed));
    expect(safe).toBeDefined();

    const needsOne = await run('conflicts', 'resolve', third!);
    expect(needsOne.code).toBe(EXIT.usage);
    const resolved = await run(
      'conflicts',
      'resolve',
      third!,
      '--option',
      safe!.optionId,
      '--notes',
      'cli',
    );
    expect(resolved.code).toBe(0);
    expect(resolved.stdout).toMatch(/status\s*│ RESOLVED/);
    expect(resolved.stdout).toMatch(/resolving swap: \S+/);

    const auto = await run('conflicts', 'auto-resolve', third!, first!, '--max-risk', 'medium');
    expect(auto.code).toBe(0);
    expect(auto.stdout).toMatch(new RegExp(`${third}\\s*│ ALREADY_RESOLVED`));
    const autoJson = json<{ results: unknown[] }>(
      (await run('--json', 'conflicts', 'auto-resolve', third!)).stdout,
    );
    expect(autoJson.results[0]).toMatchObject({
      conflictId: third,
      outcome: 'AUTO_RESOLVE_OUTCOME_ALREADY_RESOLVED',
    });
  });

  it('exit codes: usage, INVALID_ARGUMENT, NOT_FOUND, UNAVAILABLE, DEADLINE_EXCEEDED', async () => {
    const badId = await run('swaps', 'get', 'not-a-uuid');
    expect(badId.code).toBe(EXIT.usage);
    expect(badId.stderr).toBe('swapctl: <swap-id> must be a UUID, got "not-a-uuid"\n');
    expect((await run('swaps', 'frobnicate')).code).toBe(EXIT.usage);
    expect((await run('--help')).code).toBe(EXIT.ok);

    // More than 60 weeks: only the server knows its limit.
    const tooWide = await run('conflicts', 'detect', '--from', '2030-01-07', '--to', '2032-01-05');
    expect(tooWide.code).toBe(exitCodeOfStatus(status.INVALID_ARGUMENT));
    expect(tooWide.code).toBe(13);
    expect(tooWide.stderr).toContain('error: INVALID_ARGUMENT');
    expect(tooWide.stderr).toMatch(/reason: \w+/);

    const notFound = await run('swaps', 'get', '00000000-0000-4000-8000-000000000000');
    expect(notFound.code).toBe(15);
    expect(notFound.stderr).toContain('reason: SWAP_NOT_FOUND');

    const nobody = await swapctl(`127.0.0.1:${await freePort()}`, '--deadline', '5s', 'health');
    expect(nobody.code).toBe(exitCodeOfStatus(status.UNAVAILABLE));
    expect(nobody.code).toBe(24);

    // A proxy that accepts the connection and never answers: the deadline ends the call.
    const proxy = await startBlackholeProxy(ts.service.port);
    try {
      proxy.arm();
      const slow = await swapctl(
        `127.0.0.1:${proxy.port}`,
        '--deadline',
        '300ms',
        'faculty',
        'list',
      );
      expect(slow.code).toBe(exitCodeOfStatus(status.DEADLINE_EXCEEDED));
      expect(slow.code).toBe(14);
    } finally {
      await proxy.close();
    }
    expect((await run('--deadline', 'soon', 'health')).code).toBe(EXIT.usage);
  });

  it('the exit code map: 10 + the gRPC status code, for every status', () => {
    const table = new Map(exitCodeTable());
    expect(table.get('OK')).toBe(0);
    expect(table.get('CANCELLED')).toBe(11);
    expect(table.get('FAILED_PRECONDITION')).toBe(19);
    expect(table.get('ABORTED')).toBe(20);
    expect(table.get('UNAUTHENTICATED')).toBe(26);
    expect(table.size).toBe(17);
  });

  it('npx swapctl works from the checkout, as a user runs it', async () => {
    const health = await npxSwapctl([
      '--addr',
      ts.address,
      '--json',
      'health',
      '--service',
      'swap.v1.SwapService',
    ]);
    expect(health.stderr).toBe('');
    expect(health.code).toBe(0);
    expect(JSON.parse(health.stdout)).toEqual({
      services: [{ service: 'swap.v1.SwapService', status: 'SERVING' }],
    });
    const notFound = await npxSwapctl([
      '--addr',
      ts.address,
      'swaps',
      'get',
      '00000000-0000-4000-8000-000000000000',
    ]);
    expect(notFound.code).toBe(15);
    expect(notFound.stderr).toContain('reason: SWAP_NOT_FOUND');
    expect(notFound.stderr).not.toMatch(/\n\s+at /);
  }, 60_000);
});

describe('swapctl with credentials', () => {
  let issuer: JwtIssuer;
  let pki: TestPki;
  let secure: TestService;
  let tokenDir: string;

  beforeAll(async () => {
    issuer = await JwtIssuer.start();
    pki = await createTestPki();
    secure = await startTestService(
      {
        ...issuer.env(),
        ...tlsEnv(pki.server),
        AUTHZ_POLICY_FILE: DEFAULT_POLICY_FILE,
      },
      { clientCredentials: clientCredentials(pki.ca) },
    );
    tokenDir = os.tmpdir();
  });
  afterAll(async () => {
    await secure?.close();
    await issuer?.close();
    await pki?.remove();
  });

  const tls = () => ['--addr', `localhost:${secure.service.port}`, '--ca', pki.ca.certFile];

  it('--ca and --token reach a TLS service; a viewer may read', async () => {
    const token = await issuer.token('ops-alice', ['viewer']);
    const out = await runSwapctlRaw([...tls(), '--token', token, '--json', 'faculty', 'list']);
    expect(out.code).toBe(0);
    // No faculty in this database: proto3 JSON leaves the empty list out.
    expect(json(out.stdout)).toEqual({});
  });

  it('--token-file; PERMISSION_DENIED (17) names the method; UNAUTHENTICATED (26) without a token', async () => {
    const file = path.join(tokenDir, `swapctl-token-${process.pid}`);
    await writeFile(file, `${await issuer.token('ops-bob', ['viewer'])}\n`);
    const denied = await runSwapctlRaw([
      ...tls(),
      '--token-file',
      file,
      'conflicts',
      'detect',
      '--from',
      '2030-01-14',
      '--to',
      '2030-01-21',
    ]);
    expect(denied.code).toBe(exitCodeOfStatus(status.PERMISSION_DENIED));
    expect(denied.code).toBe(17);
    expect(denied.stderr).toContain('reason: METHOD_NOT_ALLOWED');
    const anonymous = await runSwapctlRaw([...tls(), 'swaps', 'list']);
    expect(anonymous.code).toBe(26);
    expect(anonymous.stderr).toContain('reason: MISSING_CREDENTIALS');
    const both = await runSwapctlRaw([
      ...tls(),
      '--token',
      'x',
      '--token-file',
      file,
      'swaps',
      'list',
    ]);
    expect(both.code).toBe(EXIT.usage);
    const noFile = await runSwapctlRaw([
      ...tls(),
      '--cert',
      '/nonexistent.pem',
      '--key',
      '/nonexistent.key',
      'health',
    ]);
    expect(noFile.code).toBe(EXIT.usage);
    expect(noFile.stderr).toContain('--cert /nonexistent.pem: cannot read the file (ENOENT)');
  });

  it('without --ca the server certificate is not trusted: UNAVAILABLE', async () => {
    const out = await runSwapctlRaw([
      '--addr',
      `localhost:${secure.service.port}`,
      '--tls',
      '--deadline',
      '5s',
      'health',
    ]);
    expect(out.code).toBe(24);
  });
});

describe('swapctl with a client certificate (mTLS)', () => {
  let pki: TestPki;
  let mtls: TestService;
  beforeAll(async () => {
    pki = await createTestPki();
    mtls = await startTestService(tlsEnv(pki.server, pki.ca), {
      clientCredentials: clientCredentials(pki.ca, pki.clients.valid),
    });
  });
  afterAll(async () => {
    await mtls?.close();
    await pki?.remove();
  });

  it('--cert and --key present the certificate; without them the handshake fails', async () => {
    const base = [
      '--addr',
      `localhost:${mtls.service.port}`,
      '--ca',
      pki.ca.certFile,
      '--deadline',
      '5s',
    ];
    const ok = await runSwapctlRaw([
      ...base,
      '--cert',
      pki.clients.valid.certFile,
      '--key',
      pki.clients.valid.keyFile,
      'health',
    ]);
    expect(ok.code).toBe(0);
    expect((await runSwapctlRaw([...base, 'health'])).code).toBe(24);
    expect(
      (await runSwapctlRaw([...base, '--cert', pki.clients.valid.certFile, 'health'])).code,
    ).toBe(EXIT.usage);
  });
});

/** swapctl in-process with exactly these arguments (no --addr added). */
async function runSwapctlRaw(args: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await runSwapctl(args, {
    out: (t) => void (stdout += t),
    err: (t) => void (stderr += t),
  });
  return { code, stdout, stderr };
}
