import { readFileSync } from 'node:fs';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  errors,
  type JSONWebKeySet,
  type JWSAlgorithm,
  type JWTPayload,
  type JWTVerifyGetKey,
  jwtVerify,
} from 'jose';
import { type Clock, systemClock } from '../domain/clock';
import { ServiceUnavailableError, UnauthenticatedError } from '../domain/errors';
import type { Identity } from './identity';
import { VerifiedTokenCache, type VerifiedTokenCacheStats } from './verified-token-cache';

/** How bearer tokens are checked; `src/config.ts` builds it from the AUTH_* variables. */
export interface JwtVerifierOptions {
  /** Exactly one of `jwksUrl` (fetched and cached) and `jwksFile` (read once). */
  jwksUrl: string | undefined;
  jwksFile: string | undefined;
  issuer: string;
  audience: string;
  /** Claim holding the caller's roles, a string array; a dotted path reaches into objects. */
  rolesClaim: string;
  clockSkewSeconds: number;
  /** After a fetch, how long a token with an unknown `kid` waits before it may cause another. */
  jwksCooldownSeconds: number;
  /** How many verified tokens are remembered (see {@link VerifiedTokenCache}); 0 verifies every call. */
  tokenCacheSize: number;
}

/** What the verifier is given rather than configured with. */
export interface JwtVerifierDependencies {
  /**
   * The time tokens are checked against, by jose and by the cache alike; the
   * system clock unless given. This is the identity provider's time, not the
   * program's business clock, which tests set years ahead.
   */
  clock?: Clock;
}

/**
 * Asymmetric algorithms only. A shared-secret (HS*) token could be forged by
 * anyone holding the public key if it were accepted, and `none` is unsigned.
 */
const ALGORITHMS: JWSAlgorithm[] = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
];

/** How long a failed key-set fetch tells the caller to wait before retrying. */
const RETRY_AFTER_MS = 1_000;

/** Finds the key that verifies a token, by its header (kid, alg). */
type KeyLookup = JWTVerifyGetKey;

/**
 * Verifies `authorization: Bearer …` tokens (OIDC access or ID tokens): the
 * signature against the identity provider's key set, then issuer, audience,
 * exp and nbf. Every refusal is an {@link UnauthenticatedError} whose message
 * never contains the token.
 *
 * Clients send the same token on every call of its life, so what a full
 * verification proved is remembered ({@link VerifiedTokenCache}): a repeat
 * costs a SHA-256 instead of a signature check on the threadpool. Refusals
 * are never remembered.
 */
export class JwtVerifier {
  private readonly cache: VerifiedTokenCache;

  private constructor(
    private readonly keys: KeyLookup,
    private readonly options: JwtVerifierOptions,
    private readonly clock: Clock,
  ) {
    this.cache = new VerifiedTokenCache(options.tokenCacheSize);
  }

  /** Reads a local key set now, so that a bad file stops the start-up. */
  static create(
    options: JwtVerifierOptions,
    dependencies: JwtVerifierDependencies = {},
  ): JwtVerifier {
    const clock = dependencies.clock ?? systemClock;
    if (options.jwksUrl) {
      const remote = createRemoteJWKSet(new URL(options.jwksUrl), {
        cooldownDuration: options.jwksCooldownSeconds * 1000,
      });
      return new JwtVerifier(keyFetchFailuresAsUnavailable(remote), options, clock);
    }
    if (options.jwksFile) return new JwtVerifier(localKeySet(options.jwksFile), options, clock);
    throw new TypeError('JwtVerifier needs jwksUrl or jwksFile');
  }

  /** The principal (`sub`) and claimed roles of a valid token. */
  async verify(token: string): Promise<Identity> {
    // One reading of the clock for the lookup, jose and the entry, so they agree.
    const now = this.clock.now();
    const cached = this.cache.get(token, now.getTime());
    if (cached) return cached;
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.keys, {
        algorithms: ALGORITHMS,
        issuer: this.options.issuer,
        audience: this.options.audience,
        clockTolerance: this.options.clockSkewSeconds,
        requiredClaims: ['sub'],
        currentDate: now,
      }));
    } catch (error) {
      throw refusalOf(error);
    }
    if (!payload.sub) throw new UnauthenticatedError('INVALID_TOKEN', 'the token has an empty sub');
    const identity: Identity = Object.freeze({
      principal: payload.sub,
      tokenRoles: Object.freeze(rolesOf(payload, this.options.rolesClaim)),
    });
    this.cache.set(token, identity, payload.exp, now.getTime());
    return identity;
  }

  /** Hits, misses and size of the verified-token cache. */
  get cacheStats(): VerifiedTokenCacheStats {
    return this.cache.stats;
  }
}

function localKeySet(file: string): KeyLookup {
  let jwks: JSONWebKeySet;
  try {
    jwks = JSON.parse(readFileSync(file, 'utf8')) as JSONWebKeySet;
    return createLocalJWKSet(jwks);
  } catch (error) {
    throw new Error(`AUTH_JWKS_FILE ${file}: not a JSON Web Key Set`, { cause: error });
  }
}

/**
 * A key set that cannot be fetched is the identity provider's outage, not the
 * caller's fault: UNAVAILABLE, so clients retry instead of dropping their token.
 */
function keyFetchFailuresAsUnavailable(remote: KeyLookup): KeyLookup {
  return async (header, token) => {
    try {
      return await remote(header, token);
    } catch (error) {
      if (
        error instanceof errors.JWKSNoMatchingKey ||
        error instanceof errors.JWKSMultipleMatchingKeys ||
        error instanceof errors.JOSEAlgNotAllowed ||
        error instanceof errors.JOSENotSupported
      ) {
        throw error;
      }
      throw new ServiceUnavailableError(
        'IDENTITY_PROVIDER_UNAVAILABLE',
        'the identity provider’s key set could not be fetched',
        RETRY_AFTER_MS,
        { cause: error },
      );
    }
  };
}

/** What a failed verification tells the caller, in words of our own (jose's may quote claims). */
function refusalOf(error: unknown): Error {
  if (error instanceof ServiceUnavailableError) return error;
  const refuse = (reason: ConstructorParameters<typeof UnauthenticatedError>[0], message: string) =>
    new UnauthenticatedError(reason, message, { cause: error });
  if (error instanceof errors.JWTExpired) return refuse('TOKEN_EXPIRED', 'the token has expired');
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === 'nbf') return refuse('TOKEN_NOT_YET_VALID', 'the token is not valid yet');
    if (error.claim === 'aud')
      return refuse('WRONG_AUDIENCE', 'the token is not meant for this service');
    if (error.claim === 'iss')
      return refuse('WRONG_ISSUER', 'the token comes from an untrusted issuer');
    return refuse('INVALID_TOKEN', `the token's ${error.claim} claim is invalid`);
  }
  if (error instanceof errors.JOSEAlgNotAllowed || error instanceof errors.JOSENotSupported) {
    return refuse(
      'UNSUPPORTED_ALGORITHM',
      'the token is not signed with an accepted asymmetric algorithm',
    );
  }
  if (error instanceof errors.JWKSNoMatchingKey) {
    return refuse(
      'UNKNOWN_KEY',
      'the token is signed with a key the identity provider does not publish',
    );
  }
  if (error instanceof errors.JWKSMultipleMatchingKeys) {
    return refuse('UNKNOWN_KEY', 'the token names no single key of the key set (it needs a kid)');
  }
  if (error instanceof errors.JOSEError)
    return refuse('INVALID_TOKEN', 'the token is malformed or its signature is invalid');
  return error instanceof Error ? error : new Error(String(error));
}

/** The roles claim: a top-level claim of that exact name, or else a dotted path into the payload. */
function rolesOf(payload: JWTPayload, claim: string): string[] {
  let value: unknown = payload[claim];
  if (value === undefined && claim.includes('.')) {
    value = claim
      .split('.')
      .reduce<unknown>(
        (node, key) =>
          node && typeof node === 'object' ? (node as Record<string, unknown>)[key] : undefined,
        payload,
      );
  }
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((role) => typeof role === 'string')) {
    throw new UnauthenticatedError(
      'INVALID_TOKEN',
      `the token's ${claim} claim is not a list of role names`,
    );
  }
  return value;
}
