import { credentials, makeGenericClientConstructor, Metadata, status } from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JwtVerifier, type JwtVerifierOptions } from '../src/auth/jwt-verifier';
import { capturedLog, TempFiles } from './support/access-control';
import { failure } from './support/grpc-outcomes';
import { JwtIssuer, refusalReasonOf } from './support/jwt-issuer';
import { errorDetails, startTestService, type TestService } from './support/test-service';

/**
 * Bearer tokens through a real server and client: the service trusts a test
 * identity provider whose JWKS endpoint this file starts. Every way a token
 * can be wrong is refused UNAUTHENTICATED with its own reason, and no token
 * ever appears in a message or a log line. No AUTHZ_POLICY_FILE here: an
 * authenticated caller may call every method (authorization.test.ts has the policy).
 */

let issuer: JwtIssuer;
let ts: TestService;
const logs = capturedLog('debug');
/** Every token this file sent, to look for in messages and logs. */
const sent: string[] = [];

beforeAll(async () => {
  issuer = await JwtIssuer.start();
  // A cooldown of 0: an unknown kid refetches the key set every time, so the test can count it.
  ts = await startTestService(
    { ...issuer.env(), AUTH_JWKS_COOLDOWN_SECONDS: '0' },
    { log: logs.log },
  );
});
afterAll(async () => {
  await ts?.close();
  await issuer?.close();
});

const now = () => Math.floor(Date.now() / 1000);

/** ListSwaps with `authorization` set to `header` (none if undefined). */
function listSwapsWith(header: string | undefined) {
  const metadata = new Metadata();
  if (header !== undefined) {
    metadata.set('authorization', header);
    sent.push(header);
  }
  return ts.api.listSwaps({}, { metadata });
}

async function refusal(header: string | undefined) {
  const error = await failure(listSwapsWith(header));
  return { code: status[error.code], reason: errorDetails(error).reason, message: error.details };
}

describe('a bearer token', () => {
  it('that is valid lets the call through', async () => {
    const token = await issuer.token('alice');
    await expect(listSwapsWith(`Bearer ${token}`)).resolves.toMatchObject({ swaps: [] });
  });

  it('that expired less than the clock skew ago is still accepted', async () => {
    const token = await issuer.token('alice', [], { iat: now() - 600, exp: now() - 5 });
    await expect(listSwapsWith(`Bearer ${token}`)).resolves.toMatchObject({ swaps: [] });
  });

  it.each<[string, () => Promise<string>, string]>([
    [
      'expired',
      () => issuer.token('alice', [], { iat: now() - 600, exp: now() - 120 }),
      'TOKEN_EXPIRED',
    ],
    [
      'not yet valid',
      () => issuer.token('alice', [], { nbf: now() + 600, exp: now() + 900 }),
      'TOKEN_NOT_YET_VALID',
    ],
    [
      'for another audience',
      () => issuer.token('alice', [], { aud: 'billing-service' }),
      'WRONG_AUDIENCE',
    ],
    [
      'from another issuer',
      () => issuer.token('alice', [], { iss: 'https://evil.example' }),
      'WRONG_ISSUER',
    ],
    [
      'unsigned (alg: none)',
      () => issuer.token('alice', [], {}, { alg: 'none' }),
      'UNSUPPORTED_ALGORITHM',
    ],
    [
      'HS256 signed with the public key',
      () => issuer.token('alice', [], {}, { alg: 'HS256' }),
      'UNSUPPORTED_ALGORITHM',
    ],
    [
      'signed with a key the issuer never published',
      () => issuer.token('alice', [], {}, { unpublished: true, kid: 'not-published' }),
      'UNKNOWN_KEY',
    ],
    ['whose payload was tampered with', () => tampered(), 'INVALID_TOKEN'],
    ['without a sub', () => issuer.token('alice', [], { sub: undefined }), 'INVALID_TOKEN'],
    [
      'whose roles claim is not a list',
      () => issuer.token('alice', [], { roles: 'coordinator' }),
      'INVALID_TOKEN',
    ],
  ])('that is %s is refused', async (_case, make, reason) => {
    const token = await make();
    const refused = await refusal(`Bearer ${token}`);
    expect(refused).toMatchObject({ code: 'UNAUTHENTICATED', reason });
    expect(refused.message).not.toContain(token);
    for (const part of token.split('.').filter((p) => p.length > 8)) {
      expect(refused.message).not.toContain(part);
    }
  });

  it.each([
    ['no authorization header', undefined, 'MISSING_CREDENTIALS'],
    ['another scheme', 'Basic YWxpY2U6c2VjcmV0', 'INVALID_TOKEN'],
    ['a bearer that is no JWT', 'Bearer not.a.jwt-at-all', 'INVALID_TOKEN'],
  ])('is required: %s is refused', async (_case, header, reason) => {
    const refused = await refusal(header);
    expect(refused).toMatchObject({ code: 'UNAUTHENTICATED', reason });
    if (header) expect(refused.message).not.toContain(header.split(' ')[1]);
  });

  it('with an unknown kid makes the service fetch the key set again, so a rotated key works at once', async () => {
    const token = await issuer.token('alice');
    await listSwapsWith(`Bearer ${token}`);
    const fetched = issuer.jwksFetches;
    // Known kid: served from the cache.
    await listSwapsWith(`Bearer ${await issuer.token('alice')}`);
    expect(issuer.jwksFetches).toBe(fetched);

    const rotated = await issuer.rotate();
    const signedWithNewKey = await issuer.token('alice', [], {}, { key: rotated });
    await expect(listSwapsWith(`Bearer ${signedWithNewKey}`)).resolves.toMatchObject({ swaps: [] });
    expect(issuer.jwksFetches).toBe(fetched + 1);

    const unknown = await issuer.token(
      'alice',
      [],
      {},
      { unpublished: true, kid: 'never-published' },
    );
    expect(await refusal(`Bearer ${unknown}`)).toMatchObject({ reason: 'UNKNOWN_KEY' });
    expect(issuer.jwksFetches).toBe(fetched + 2);
  });

  it('never appears in the service’s logs, which do record each refused call', () => {
    const text = logs.text();
    expect(text).toContain('"status":"UNAUTHENTICATED"');
    const leaked = sent
      .flatMap((header) => header.split(/[ .]/))
      .filter((part) => part.length > 16 && text.includes(part));
    expect(leaked).toEqual([]);
  });
});

describe('with no key set and no client CA', () => {
  it('logs one line that authentication is off, and takes every call as anonymous', async () => {
    const offLogs = capturedLog('info');
    const open = await startTestService({}, { log: offLogs.log });
    try {
      const metadata = JwtIssuer.bearer(await issuer.token('mallory', [], { aud: 'elsewhere' }));
      metadata.set('x-actor', 'root');
      await expect(open.api.listSwaps({}, { metadata })).resolves.toMatchObject({ swaps: [] });
    } finally {
      await open.close();
    }
    const lines = offLogs
      .text()
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { msg: string; method?: string; principal?: string });
    expect(lines.filter((l) => l.msg.includes('authentication is off'))).toHaveLength(1);
    expect(lines.find((l) => l.msg === 'call' && l.method === 'ListSwaps')?.principal).toBe(
      'anonymous',
    );
  });
});

describe('health', () => {
  it('answers without credentials', async () => {
    const Health = makeGenericClientConstructor(healthService, 'Health');
    const health = new Health(
      `127.0.0.1:${ts.service.port}`,
      credentials.createInsecure(),
    ) as unknown as {
      check(
        request: { service: string },
        callback: (error: Error | null, response?: { status: string }) => void,
      ): void;
      close(): void;
    };
    try {
      const answer = await new Promise<{ status: string }>((resolve, reject) =>
        health.check({ service: 'swap.v1.SwapService' }, (error, response) =>
          error ? reject(error) : resolve(response!),
        ),
      );
      expect(answer.status).toBe('SERVING');
    } finally {
      health.close();
    }
  });
});

describe('JwtVerifier', () => {
  const options = (more: Partial<JwtVerifierOptions>): JwtVerifierOptions => ({
    jwksUrl: issuer.jwksUrl,
    jwksFile: undefined,
    issuer: issuer.issuer,
    audience: issuer.audience,
    rolesClaim: 'roles',
    clockSkewSeconds: 30,
    jwksCooldownSeconds: 30,
    tokenCacheSize: 10_000,
    ...more,
  });

  it('does not refetch within the cooldown, however many unknown kids arrive', async () => {
    const verifier = JwtVerifier.create(options({}));
    await verifier.verify(await issuer.token('alice'));
    const fetched = issuer.jwksFetches;
    for (const kid of ['k-1', 'k-2', 'k-3']) {
      const token = await issuer.token('alice', [], {}, { unpublished: true, kid });
      expect(await refusalReasonOf(verifier.verify(token))).toBe('UNKNOWN_KEY');
    }
    expect(issuer.jwksFetches).toBe(fetched);
  });

  it('reads the roles from a dotted path such as realm_access.roles', async () => {
    const verifier = JwtVerifier.create(options({ rolesClaim: 'realm_access.roles' }));
    const token = await issuer.token('alice', [], { realm_access: { roles: ['scheduler'] } });
    expect(await verifier.verify(token)).toEqual({ principal: 'alice', tokenRoles: ['scheduler'] });
  });

  it('verifies against a local key set (AUTH_JWKS_FILE) without fetching anything', async () => {
    const files = new TempFiles();
    try {
      const jwksFile = files.write('jwks.json', JSON.stringify(issuer.jwks()));
      const verifier = JwtVerifier.create(options({ jwksUrl: undefined, jwksFile }));
      const fetched = issuer.jwksFetches;
      expect(await verifier.verify(await issuer.token('bob', ['viewer']))).toEqual({
        principal: 'bob',
        tokenRoles: ['viewer'],
      });
      const unknown = await issuer.token('bob', [], {}, { unpublished: true });
      expect(await refusalReasonOf(verifier.verify(unknown))).toBe('UNKNOWN_KEY');
      expect(issuer.jwksFetches).toBe(fetched);
    } finally {
      files.remove();
    }
  });
});

/** A valid token whose payload now names another subject, with the original signature. */
async function tampered(): Promise<string> {
  const [header, payload, signature] = (await issuer.token('alice')).split('.');
  const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString()) as Record<
    string,
    unknown
  >;
  const forged = Buffer.from(JSON.stringify({ ...claims, sub: 'root' })).toString('base64url');
  return `${header}.${forged}.${signature}`;
}
