import pg from 'pg';
import type { Logger } from 'pino';

/** How readiness follows the database (config.ts fills it from READINESS_*). */
export interface ReadinessSettings {
  intervalMs: number;
  timeoutMs: number;
  /** Consecutive failures that turn readiness NOT_SERVING. */
  failuresToUnready: number;
  /** Consecutive successes that turn it SERVING again. */
  successesToReady: number;
}

/** One look at the database: resolves if it answered in time, rejects otherwise. */
export type DatabaseProbe = () => Promise<void>;

/**
 * `select 1` on a connection of its own, not one from the pool: readiness
 * asks whether the database is reachable, and a pool busy with real work must
 * not make a replica look unready (that would shed load onto the others).
 */
export function selectOneProbe(url: string, timeoutMs: number): DatabaseProbe {
  return async () => {
    const client = new pg.Client({
      connectionString: url,
      connectionTimeoutMillis: timeoutMs,
      query_timeout: timeoutMs,
      application_name: 'swap-service readiness',
    });
    // A server that goes away mid-probe emits 'error' on the client; the query rejects too.
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.query('select 1');
    } finally {
      await client.end().catch(() => undefined);
    }
  };
}

/**
 * Follows the database with hysteresis: `failuresToUnready` failed probes in
 * a row turn readiness off, `successesToReady` good ones in a row turn it on
 * again, so one slow query does not flap it. Probes run one at a time,
 * `intervalMs` apart; each is cut off at `timeoutMs`. Starts ready: the
 * service has just connected and migrated.
 */
export class DatabaseReadiness {
  private ready = true;
  private streak = 0;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly probe: DatabaseProbe,
    private readonly config: ReadinessSettings,
    private readonly log: Logger,
    private readonly onChange: (ready: boolean) => void,
  ) {}

  /** Whether the last verdict was "ready". */
  isReady(): boolean {
    return this.ready;
  }

  start(): void {
    this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.check().finally(() => {
        this.running = undefined;
        this.schedule();
      });
    }, this.config.intervalMs);
    this.timer.unref();
  }

  private async check(): Promise<void> {
    const ok = await withTimeout(this.probe(), this.config.timeoutMs).then(
      () => true,
      (error: unknown) => {
        this.log.debug({ err: error }, 'readiness probe failed');
        return false;
      },
    );
    if (this.stopped) return;
    // A result that agrees with the current state resets the count towards the other.
    if (ok === this.ready) {
      this.streak = 0;
      return;
    }
    this.streak += 1;
    const needed = ok ? this.config.successesToReady : this.config.failuresToUnready;
    if (this.streak < needed) return;
    this.ready = ok;
    this.streak = 0;
    if (ok) this.log.info('database reachable again: ready');
    else this.log.warn({ probes: needed }, 'database unreachable: not ready');
    this.onChange(ok);
  }
}

function withTimeout(work: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
