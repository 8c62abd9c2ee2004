import type { EntityManager } from '@mikro-orm/postgresql';
import {
  type BoundStatement,
  type PreparedStatement,
  preparedStatement,
  runPrepared,
  withRiders,
} from '../db/prepared-statement';
import type { Logger } from 'pino';
import type { CircuitBreaker } from './circuit-breaker';
import type { LockRedisClient } from './redis-lock-scripts';

/** A committed response and the fingerprint of the request that produced it. */
export interface StoredResponse {
  fingerprint: string;
  response: Buffer;
}

export interface IdempotencySettings {
  retentionMs: number;
  keyPrefix: string;
}

const LOOKUP = preparedStatement<StoredResponse>(
  'idempotency_lookup',
  `
select fingerprint, response from idempotency_record
where scope = $1 and request_id = $2 and expires_at > now() and response is not null`,
);

// Claims the key for this transaction. A live key of a committed call makes it
// return nothing; a key claimed by a transaction still running makes it wait for
// that transaction; an expired key is taken over as new.
const CLAIM = preparedStatement<{ claimed: number }>(
  'idempotency_claim',
  `
insert into idempotency_record (scope, request_id, fingerprint, expires_at)
values ($1, $2, $3, now() + $4::interval)
on conflict (scope, request_id) do update
  set fingerprint = excluded.fingerprint, response = null, created_at = now(), expires_at = excluded.expires_at
  where idempotency_record.expires_at <= now()
returning 1 as claimed`,
);

// Returns how long the key has left, by the database's clock, so the cache never outlives it.
const COMPLETE = preparedStatement<{ ttlMs: number }>(
  'idempotency_complete',
  `
update idempotency_record set response = $1 where scope = $2 and request_id = $3
returning greatest(0, floor(extract(epoch from (expires_at - clock_timestamp())) * 1000))::float8 as "ttlMs"`,
);

/**
 * What a cached answer gives up of its key's life. Its lifetime counts from
 * when Redis runs the SET, which may come later than when the lifetime was
 * reckoned (a queued write, a busy Redis: 3 ms once on a loaded CI machine),
 * and the cache must never outlive the key in PostgreSQL.
 */
export const CACHE_DELIVERY_MARGIN_MS = 100;

/**
 * Idempotency keys kept in PostgreSQL, in the same transaction as the change
 * they record: a key is consumed if and only if the change committed, so a
 * replay survives restarts and a crash between commit and reply. Redis, when
 * present, caches completed responses for fast replay; it is never trusted for
 * anything a cache miss would not also answer.
 */
export class IdempotencyStore {
  constructor(
    private readonly settings: IdempotencySettings,
    private readonly cache: { client: LockRedisClient; breaker: CircuitBreaker } | undefined,
    private readonly log: Logger,
  ) {}

  /**
   * The committed response for a key, if any: from the cache, else read through
   * `em`, outside any transaction (the write path gets it from the transaction
   * runner, which turns a lost connection into UNAVAILABLE).
   */
  async lookup(
    em: EntityManager,
    scope: string,
    requestId: string,
  ): Promise<StoredResponse | undefined> {
    const cached = await this.cached(scope, requestId);
    if (cached) return cached;
    const [row] = await runPrepared(em, LOOKUP, [scope, requestId]);
    return row;
  }

  /**
   * Claims the key inside `em`'s transaction, or returns the response a
   * committed call already stored under it.
   */
  async claim(
    em: EntityManager,
    scope: string,
    requestId: string,
    fingerprint: string,
  ): Promise<StoredResponse | undefined> {
    const claimed = await runPrepared(em, CLAIM, [
      scope,
      requestId,
      fingerprint,
      `${this.settings.retentionMs} milliseconds`,
    ]);
    if (claimed.length > 0) return undefined;
    const [row] = await runPrepared(em, LOOKUP, [scope, requestId]);
    if (!row)
      throw new Error(`idempotency key ${scope}/${requestId} is neither claimable nor complete`);
    return row;
  }

  /**
   * Stores the response under the claimed key, in the same transaction as the
   * change, with `riders` sent in the same statement (the transaction's last
   * rows: its audit row); returns how many milliseconds the key has left.
   */
  async complete(
    em: EntityManager,
    scope: string,
    requestId: string,
    response: Uint8Array,
    riders: readonly BoundStatement[] = [],
  ): Promise<number> {
    const [row] = await runPrepared(em, this.completing(riders), [
      Buffer.from(response),
      scope,
      requestId,
      ...riders.flatMap((rider) => rider.values),
    ]);
    return row?.ttlMs ?? 0;
  }

  /** COMPLETE with these riders; a few combinations at most, each made once. */
  private completing(riders: readonly BoundStatement[]): PreparedStatement<{ ttlMs: number }> {
    if (riders.length === 0) return COMPLETE;
    const statements = riders.map((rider) => rider.statement);
    const name = statements.map((statement) => statement.name).join('+');
    let fused = this.fused.get(name);
    if (!fused) this.fused.set(name, (fused = withRiders(COMPLETE, statements)));
    return fused;
  }

  private readonly fused = new Map<string, PreparedStatement<{ ttlMs: number }>>();

  /**
   * Caches a committed response for at most `ttlMs`, less
   * {@link CACHE_DELIVERY_MARGIN_MS} (best effort).
   */
  async remember(
    scope: string,
    requestId: string,
    stored: StoredResponse,
    ttlMs: number,
  ): Promise<void> {
    const px = Math.floor(ttlMs) - CACHE_DELIVERY_MARGIN_MS;
    if (!this.cache || px < 1) return;
    const { client, breaker } = this.cache;
    const value = JSON.stringify({ f: stored.fingerprint, r: stored.response.toString('base64') });
    await breaker
      .protect(() => client.set(this.cacheKey(scope, requestId), value, 'PX', px))
      .catch((error: unknown) =>
        this.log.debug({ err: error }, 'could not cache an idempotent response'),
      );
  }

  /**
   * The committed response for a key if the replay cache has it, else
   * undefined (a miss proves nothing: the database may still hold one).
   */
  async cached(scope: string, requestId: string): Promise<StoredResponse | undefined> {
    if (!this.cache) return undefined;
    const { client, breaker } = this.cache;
    try {
      const value = await breaker.protect(() => client.get(this.cacheKey(scope, requestId)));
      if (!value) return undefined;
      const parsed = JSON.parse(value) as { f: string; r: string };
      return { fingerprint: parsed.f, response: Buffer.from(parsed.r, 'base64') };
    } catch {
      return undefined;
    }
  }

  private cacheKey(scope: string, requestId: string): string {
    return `{${this.settings.keyPrefix}}:idem:${scope}:${requestId}`;
  }
}
