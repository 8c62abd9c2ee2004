import { createHash } from 'node:crypto';
import type { Identity } from './identity';

/**
 * How long a verification is trusted without repeating it. A key the
 * identity provider withdraws from its key set keeps admitting the tokens it
 * signed for at most this long after their last full verification. jose's
 * remote key set already allows a withdrawn key more than that (it keeps a
 * fetched set for 10 minutes, `cacheMaxAge`), so the worst case becomes 15
 * minutes instead of 10. Five rather than ten: a client reuses a token for
 * many calls a minute, so one full verification per token every five minutes
 * costs nothing measurable, and halving the extra exposure is free.
 */
export const VERIFIED_TOKEN_MAX_AGE_MS = 5 * 60_000;

/** What the cache has done since it was made, for tests and diagnostics. */
export interface VerifiedTokenCacheStats {
  /** Lookups answered from the cache. */
  hits: number;
  /** Lookups that found nothing, or an entry past its exp or max age. */
  misses: number;
  /** Entries held now (expired ones count until looked up or evicted). */
  size: number;
}

interface Entry {
  identity: Identity;
  /** Epoch ms: the token's exp, or the verification plus the max age if sooner. */
  until: number;
}

/**
 * Tokens that passed a full verification, keyed by the SHA-256 of the whole
 * token: a token that differs in any byte (signature, payload or header) is
 * another key, so tampering can never produce a hit, and the cache holds no
 * bearer token a heap dump could leak. Bounded by `maxEntries`; when full,
 * the oldest entry goes (Map keeps insertion order). Only successes are put in.
 */
export class VerifiedTokenCache {
  private readonly entries = new Map<string, Entry>();
  private hits = 0;
  private misses = 0;

  /** `maxEntries` 0 keeps nothing: every token is verified every time. */
  constructor(private readonly maxEntries: number) {}

  /** The identity `token` proved, if it was verified and neither its exp nor the max age has passed. */
  get(token: string, nowMs: number): Identity | undefined {
    if (this.maxEntries === 0) return undefined;
    const key = keyOf(token);
    const entry = this.entries.get(key);
    if (entry && nowMs < entry.until) {
      this.hits += 1;
      return entry.identity;
    }
    if (entry) this.entries.delete(key);
    this.misses += 1;
    return undefined;
  }

  /**
   * Remembers that `token` proved `identity` at `nowMs`. `exp` is the token's
   * claim in seconds; a hit needs now < exp, stricter than the clock skew a
   * full verification allows, so a token inside its skew window is simply
   * verified again. A token without exp is valid until its key is withdrawn,
   * which is exactly what the max age bounds, so it is kept for the max age.
   */
  set(token: string, identity: Identity, exp: number | undefined, nowMs: number): void {
    if (this.maxEntries === 0) return;
    const until = Math.min(
      exp === undefined ? Infinity : exp * 1000,
      nowMs + VERIFIED_TOKEN_MAX_AGE_MS,
    );
    if (until <= nowMs) return;
    const key = keyOf(token);
    this.entries.delete(key);
    this.entries.set(key, { identity, until });
    while (this.entries.size > this.maxEntries) {
      this.entries.delete(this.entries.keys().next().value!);
    }
  }

  get stats(): VerifiedTokenCacheStats {
    return { hits: this.hits, misses: this.misses, size: this.entries.size };
  }
}

function keyOf(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}
