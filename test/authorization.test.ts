import {
  Client,
  credentials,
  Metadata,
  type ServiceDefinition,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordedActorOf } from '../src/domain/call-context';
import { ConflictServiceService } from '../src/generated/swap/v1/conflict';
import { SwapServiceService } from '../src/generated/swap/v1/swap';
import { DEFAULT_POLICY_FILE } from './support/access-control';
import { isServiceError } from './support/grpc-outcomes';
import type { JwtIssuer } from './support/jwt-issuer';
import { errorOf, executeSwapAnswer, okResponse } from './support/replay-aware-calls';
import type { ScheduleFixture } from './support/schedule-fixture';
import { fmitSwapPair } from './support/swap-pair';
import {
  errorDetails,
  type TestService,
  useTokenAuthenticatedService,
} from './support/test-service';

/**
 * Authorization through a real server: callers prove who they are with
 * tokens of a test identity provider, and the service enforces the shipped
 * default policy (src/auth/default-policy.yaml), whose jwtRoles bind each
 * token role to the service role of the same name.
 */

let issuer: JwtIssuer;
let ts: TestService;
let fx: ScheduleFixture;
useTokenAuthenticatedService((started) => ({ ts, fx, issuer } = started), {
  AUTHZ_POLICY_FILE: DEFAULT_POLICY_FILE,
});

/** A generic client, to call any method by its path with raw bytes. */
let raw: Client;
beforeAll(() => {
  raw = new Client(`127.0.0.1:${ts.service.port}`, credentials.createInsecure());
});
afterAll(() => raw.close());

const identity = (bytes: Buffer) => bytes;

/** Calls `path` with an empty request (every field unset): an allowed call fails validation cheaply. */
function callEmpty(path: string, metadata: Metadata): Promise<ServiceError | 'OK'> {
  return new Promise((resolve) =>
    raw.makeUnaryRequest(
      path,
      identity,
      identity,
      Buffer.alloc(0),
      metadata,
      { deadline: new Date(Date.now() + 30_000) },
      (error) => resolve(error ?? 'OK'),
    ),
  );
}

/** What a reflection stream answers to `list_services`: OK, or the status it failed with. */
function listServices(metadata: Metadata): Promise<ServiceError | 'OK'> {
  return new Promise((resolve) => {
    const stream = raw.makeBidiStreamRequest(
      '/grpc.reflection.v1.ServerReflection/ServerReflectionInfo',
      identity,
      identity,
      metadata,
      { deadline: new Date(Date.now() + 30_000) },
    );
    stream.on('data', () => {
      resolve('OK');
      stream.cancel();
    });
    stream.on('error', (error: unknown) => {
      if (isServiceError(error) && error.code !== status.CANCELLED) resolve(error);
    });
    // ServerReflectionRequest { list_services: "" }: field 7, length-delimited, empty.
    stream.write(Buffer.from([0x3a, 0x00]));
    stream.end();
  });
}

const V = ['viewer', 'scheduler', 'coordinator'];
const S = ['scheduler', 'coordinator'];
const C = ['coordinator'];

/** The suggested policy, written out: who may call each method. */
const WHO_MAY: Record<string, string[]> = {
  'swap.v1.SwapService/ExecuteSwap': S,
  'swap.v1.SwapService/ValidateSwap': V,
  'swap.v1.SwapService/RollbackSwap': C,
  'swap.v1.SwapService/GetSwap': V,
  'swap.v1.SwapService/ListSwaps': V,
  'swap.v1.ConflictService/DetectConflicts': C,
  'swap.v1.ConflictService/ListConflicts': V,
  'swap.v1.ConflictService/GetConflict': V,
  'swap.v1.ConflictService/AcknowledgeConflict': S,
  'swap.v1.ConflictService/IgnoreConflict': S,
  'swap.v1.ConflictService/GetResolutionOptions': V,
  'swap.v1.ConflictService/ResolveConflict': S,
  'swap.v1.ConflictService/AutoResolve': C,
};
/** The suggested roles, and a caller whose token names none the policy knows. */
const ROLES = ['viewer', 'scheduler', 'coordinator', 'auditor', 'unbound'];

describe('the default policy', () => {
  it('allows each method to exactly the roles the table names, and refuses the others METHOD_NOT_ALLOWED', async () => {
    const services: ServiceDefinition[] = [SwapServiceService, ConflictServiceService];
    const served = services.flatMap((service) =>
      Object.values(service).map((method) => method.path),
    );
    expect(served.map((path) => path.slice(1)).sort()).toEqual(Object.keys(WHO_MAY).sort());

    const allowed: Record<string, string[]> = {};
    const wrongRefusals: string[] = [];
    for (const path of served) {
      const method = path.slice(1);
      allowed[method] = [];
      for (const role of ROLES) {
        const answer = await callEmpty(path, await issuer.metadataFor(`${role}-bot`, [role]));
        if (answer !== 'OK' && answer.code === status.PERMISSION_DENIED) {
          const { reason } = errorDetails(answer);
          if (reason !== 'METHOD_NOT_ALLOWED' || !answer.details.includes(method))
            wrongRefusals.push(`${method} ${role}: ${reason} ${answer.details}`);
        } else if (answer !== 'OK' && answer.code === status.UNAUTHENTICATED) {
          wrongRefusals.push(`${method} ${role}: UNAUTHENTICATED ${answer.details}`);
        } else {
          allowed[method].push(role);
        }
      }
    }
    expect(allowed).toEqual(WHO_MAY);
    expect(wrongRefusals).toEqual([]);
  });

  it('opens reflection to a role with the reflection permission only', async () => {
    const asOperator = await listServices(await issuer.metadataFor('grpcurl', ['operator']));
    expect(asOperator).toBe('OK');
    const asCoordinator = await listServices(await issuer.metadataFor('lead', ['coordinator']));
    expect(asCoordinator !== 'OK' && asCoordinator.code).toBe(status.PERMISSION_DENIED);
    const anonymous = await listServices(new Metadata());
    expect(anonymous !== 'OK' && anonymous.code).toBe(status.UNAUTHENTICATED);
  });
});

describe('x-on-behalf-of', () => {
  it('is refused DELEGATION_NOT_ALLOWED from a principal whose roles lack delegate, and nothing runs', async () => {
    const pair = await fmitSwapPair(fx, {
      sourceWeek: '2030-02-04',
      targetWeek: '2030-02-18',
      reason: 'delegation refused',
    });
    const before = await fx.snapshot();
    const answer = await executeSwapAnswer(ts.client, pair.request(), {
      token: await issuer.token('lead', ['coordinator']),
      headers: { 'x-on-behalf-of': 'dr.grey' },
    });
    const error = errorOf(answer);
    expect(error.code).toBe(status.PERMISSION_DENIED);
    expect(errorDetails(error).reason).toBe('DELEGATION_NOT_ALLOWED');
    expect(await fx.snapshot()).toEqual(before);
  });

  it('from a delegator records the person and the principal, and scopes the key by both', async () => {
    const pair = await fmitSwapPair(fx, {
      sourceWeek: '2030-03-04',
      targetWeek: '2030-03-18',
      reason: 'delegated',
    });
    const request = pair.request();
    const token = await issuer.token('scheduling-ui', ['scheduler', 'delegator']);
    const asGrey = { token, headers: { 'x-on-behalf-of': 'dr.grey' } };
    const { swap } = okResponse(await executeSwapAnswer(ts.client, request, asGrey));
    const recorded = recordedActorOf({
      principal: 'scheduling-ui',
      onBehalfOf: 'dr.grey',
      peer: '',
    });
    expect(recorded).toBe('dr.grey (via scheduling-ui)');
    expect(swap?.requestedBy).toBe(recorded);
    expect(swap?.executedBy).toBe(recorded);

    const again = await executeSwapAnswer(ts.client, request, asGrey);
    expect(again.replayed).toBe(true);
    // Another person behind the same front-end is another key: it runs (and fails, the weeks having moved).
    const asYang = await executeSwapAnswer(ts.client, request, {
      token,
      headers: { 'x-on-behalf-of': 'dr.yang' },
    });
    expect(asYang.replayed).toBe(false);
    expect(errorOf(asYang).code).toBe(status.FAILED_PRECONDITION);
    // Two keys: grey's swap, and yang's refusal (kept as that key's answer).
    expect(await scopesOf(request.requestId)).toEqual([
      '["scheduling-ui","dr.grey","ExecuteSwap"]',
      '["scheduling-ui","dr.yang","ExecuteSwap"]',
    ]);
  });
});

describe('a forged identity', () => {
  it('x-actor changes neither who is recorded nor whose key it is', async () => {
    const pair = await fmitSwapPair(fx, {
      sourceWeek: '2030-04-01',
      targetWeek: '2030-04-15',
      reason: 'forged',
    });
    const request = pair.request();
    const token = await issuer.token('alice', ['scheduler']);
    const first = await executeSwapAnswer(ts.client, request, {
      token,
      headers: { 'x-actor': 'root; DROP' },
    });
    expect(okResponse(first).swap?.requestedBy).toBe('alice');
    const second = await executeSwapAnswer(ts.client, request, {
      token,
      headers: { 'x-actor': 'bob' },
    });
    expect(second.replayed).toBe(true);
    expect(okResponse(second)).toEqual(okResponse(first));
    expect(await scopesOf(request.requestId)).toEqual(['["alice",null,"ExecuteSwap"]']);
  });
});

async function scopesOf(requestId: string): Promise<string[]> {
  const { rows } = await fx.db.query<{ scope: string }>(
    'select scope from idempotency_record where request_id = $1 order by scope',
    [requestId],
  );
  return rows.map((r) => r.scope);
}
