import { afterEach, describe, expect, it } from 'vitest';
import { JwtVerifier, type JwtVerifierOptions } from '../src/auth/jwt-verifier';
import { VERIFIED_TOKEN_MAX_AGE_MS } from '../src/auth/verified-token-cache';
import { JwtIssuer, refusalReasonOf } from './support/jwt-issuer';
import { TestClock } from './support/test-clock';

/**
 * The verifier's cache of verified tokens, with real keys and signatures: a
 * test identity provider (JWKS over HTTP) and a clock the test moves. Where a
 * hit must be told from a full verification without counting, the key that
 * signed the token is withdrawn: jose then refuses it, the cache does not.
 */

const issuers: JwtIssuer[] = [];
afterEach(async () => {
  await Promise.all(issuers.splice(0).map((i) => i.close()));
});

const SKEW_SECONDS = 30;

/** A fresh identity provider (tests withdraw its keys), a verifier trusting it and a clock at the real now. */
async function setUp(more: Partial<JwtVerifierOptions> = {}) {
  const issuer = await JwtIssuer.start();
  issuers.push(issuer);
  const clock = new TestClock(new Date());
  const verifier = JwtVerifier.create(
    {
      jwksUrl: issuer.jwksUrl,
      jwksFile: undefined,
      issuer: issuer.issuer,
      audience: issuer.audience,
      rolesClaim: 'roles',
      clockSkewSeconds: SKEW_SECONDS,
      // 0: a token with an unknown kid refetches the key set at once, so a withdrawal takes effect.
      jwksCooldownSeconds: 0,
      tokenCacheSize: 10_000,
      ...more,
    },
    { clock },
  );
  return { issuer, clock, verifier };
}

/**
 * Withdraws the key that signs by default and rotates to a new one; then
 * verifies a token of the new key, so that jose refetches the key set and no
 * longer holds the old key. Returns the old kid.
 */
async function withdrawFirstKey(issuer: JwtIssuer, verifier: JwtVerifier): Promise<string> {
  const old = issuer.kids[0]!;
  const next = await issuer.rotate();
  issuer.withdraw(old);
  await verifier.verify(await issuer.token('carol', [], {}, { key: next }));
  return old;
}

const seconds = (clock: TestClock) => Math.floor(clock.now().getTime() / 1000);

describe('the verified-token cache', () => {
  it('answers a second verification of the same token without verifying it again', async () => {
    const { issuer, verifier } = await setUp();
    const token = await issuer.token('alice', ['scheduler']);
    const identity = { principal: 'alice', tokenRoles: ['scheduler'] };
    expect(await verifier.verify(token)).toEqual(identity);
    expect(await verifier.verify(token)).toEqual(identity);
    expect(verifier.cacheStats).toEqual({ hits: 1, misses: 1, size: 1 });
  });

  it('keeps admitting a verified token after its key is withdrawn, but no new token of that key', async () => {
    const { issuer, verifier } = await setUp();
    const token = await issuer.token('alice');
    await verifier.verify(token);
    const old = await withdrawFirstKey(issuer, verifier);
    const fresh = await issuer.token('alice', [], {}, { key: old });
    expect(await refusalReasonOf(verifier.verify(fresh))).toBe('UNKNOWN_KEY');
    expect(await verifier.verify(token)).toEqual({ principal: 'alice', tokenRoles: [] });
  });

  it.each([
    // An hour of life, so that only the max age, not exp, ends the entry.
    ['verifies a token again once the max age has passed: a withdrawn key is then refused', 3600],
    ['keeps a token without exp for the max age only', undefined],
  ])('%s', async (_name, life) => {
    const { issuer, clock, verifier } = await setUp();
    const exp = life === undefined ? undefined : seconds(clock) + life;
    const token = await issuer.token('alice', [], { exp });
    await verifier.verify(token);
    await withdrawFirstKey(issuer, verifier);
    clock.advance(VERIFIED_TOKEN_MAX_AGE_MS - 1);
    await expect(verifier.verify(token)).resolves.toMatchObject({ principal: 'alice' });
    clock.advance(1);
    expect(await refusalReasonOf(verifier.verify(token))).toBe('UNKNOWN_KEY');
  });

  it('stops answering at exp, and the full verification refuses TOKEN_EXPIRED past the skew', async () => {
    const { issuer, clock, verifier } = await setUp();
    const exp = seconds(clock) + 60;
    const token = await issuer.token('alice', [], { exp });
    await verifier.verify(token);
    // At exp jose still accepts (within the skew), but not from the cache.
    clock.set(new Date(exp * 1000));
    await expect(verifier.verify(token)).resolves.toMatchObject({ principal: 'alice' });
    expect(verifier.cacheStats).toMatchObject({ hits: 0, misses: 2 });
    clock.set(new Date((exp + SKEW_SECONDS) * 1000));
    expect(await refusalReasonOf(verifier.verify(token))).toBe('TOKEN_EXPIRED');
  });

  it('refuses a token that differs from a cached one only in its signature or only in its payload', async () => {
    const { issuer, verifier } = await setUp();
    const token = await issuer.token('alice');
    await verifier.verify(token);
    const [header, payload, signature] = token.split('.') as [string, string, string];
    // The first character: the last may only carry padding bits.
    const resigned = `${header}.${payload}.${signature.startsWith('A') ? 'B' : 'A'}${signature.slice(1)}`;
    expect(await refusalReasonOf(verifier.verify(resigned))).toBe('INVALID_TOKEN');
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as object;
    const forged = Buffer.from(JSON.stringify({ ...claims, sub: 'root' })).toString('base64url');
    expect(await refusalReasonOf(verifier.verify(`${header}.${forged}.${signature}`))).toBe(
      'INVALID_TOKEN',
    );
    expect(verifier.cacheStats).toMatchObject({ hits: 0, size: 1 });
  });

  it('never remembers a refusal', async () => {
    const { issuer, clock, verifier } = await setUp();
    const nbf = seconds(clock) + 600;
    const token = await issuer.token('alice', [], { nbf, exp: nbf + 600 });
    expect(await refusalReasonOf(verifier.verify(token))).toBe('TOKEN_NOT_YET_VALID');
    expect(verifier.cacheStats.size).toBe(0);
    clock.set(new Date(nbf * 1000));
    await expect(verifier.verify(token)).resolves.toMatchObject({ principal: 'alice' });
  });

  it('holds at most AUTH_TOKEN_CACHE_SIZE tokens, dropping the oldest', async () => {
    const { issuer, verifier } = await setUp({ tokenCacheSize: 2 });
    const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((sub) => issuer.token(sub)));
    for (const token of [a!, b!, c!]) await verifier.verify(token);
    expect(verifier.cacheStats).toEqual({ hits: 0, misses: 3, size: 2 });
    await verifier.verify(c!);
    await verifier.verify(b!);
    expect(verifier.cacheStats).toMatchObject({ hits: 2, misses: 3 });
    await verifier.verify(a!);
    expect(verifier.cacheStats).toEqual({ hits: 2, misses: 4, size: 2 });
  });

  it('with AUTH_TOKEN_CACHE_SIZE=0, verifies every call', async () => {
    const { issuer, verifier } = await setUp({ tokenCacheSize: 0 });
    const token = await issuer.token('alice');
    await verifier.verify(token);
    await withdrawFirstKey(issuer, verifier);
    expect(await refusalReasonOf(verifier.verify(token))).toBe('UNKNOWN_KEY');
    expect(verifier.cacheStats).toEqual({ hits: 0, misses: 0, size: 0 });
  });
});
