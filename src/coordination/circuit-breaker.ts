import CircuitBreakerImpl from 'opossum';
import type { Logger } from 'pino';
import { BreakerOpenError } from '../domain/errors';

export type BreakerState = 'closed' | 'open' | 'half_open';

export interface BreakerStats {
  state: BreakerState;
  /** How often the breaker changed state, by the state it entered. */
  transitions: Record<BreakerState, number>;
  /** Calls refused without being tried because the breaker was open. */
  rejected: number;
}

export interface BreakerOptions {
  name: string;
  /** Failures within the rolling window that open the breaker. */
  failureThreshold: number;
  /** How long it stays open before letting one trial call through. */
  cooldownMs: number;
  /** Errors that say nothing about the dependency's health (e.g. lock contention). */
  isExpected?: (error: unknown) => boolean;
  log: Logger;
}

/**
 * A circuit breaker (opossum underneath): after repeated failures it opens for
 * a cool-down, then half-opens to let one trial call decide. Every state change
 * is logged and counted.
 */
export class CircuitBreaker {
  private readonly breaker: CircuitBreakerImpl<[() => Promise<unknown>], unknown>;
  private readonly counts: BreakerStats = {
    state: 'closed',
    transitions: { closed: 0, open: 0, half_open: 0 },
    rejected: 0,
  };

  constructor(private readonly options: BreakerOptions) {
    this.breaker = new CircuitBreakerImpl((action: () => Promise<unknown>) => action(), {
      name: options.name,
      // Our callers bound their own time; a second timeout here would only race them.
      timeout: false,
      resetTimeout: options.cooldownMs,
      // Opens once at least `failureThreshold` calls in the last two seconds were
      // seen and more than half of them failed: a short window, so a Redis that
      // just died is noticed after a few calls, however busy the past was.
      volumeThreshold: options.failureThreshold,
      errorThresholdPercentage: 50,
      rollingCountTimeout: 2_000,
      rollingCountBuckets: 10,
      errorFilter: (error: unknown) => options.isExpected?.(error) ?? false,
    });
    this.breaker.on('open', () => this.enter('open'));
    this.breaker.on('halfOpen', () => this.enter('half_open'));
    this.breaker.on('close', () => this.enter('closed'));
    this.breaker.on('reject', () => this.counts.rejected++);
  }

  /** Calls `action` unless the breaker is open; then throws BreakerOpenError without calling it. */
  async protect<T>(action: () => Promise<T>): Promise<T> {
    try {
      return (await this.breaker.fire(action)) as T;
    } catch (error) {
      if ((error as { code?: unknown }).code === 'EOPENBREAKER') {
        throw new BreakerOpenError(this.options.name, this.options.cooldownMs, { cause: error });
      }
      throw error;
    }
  }

  state(): BreakerState {
    return this.counts.state;
  }

  stats(): BreakerStats {
    return structuredClone(this.counts);
  }

  /** Stops the breaker's timers. */
  shutdown(): void {
    this.breaker.shutdown();
  }

  private enter(state: BreakerState): void {
    this.counts.state = state;
    this.counts.transitions[state]++;
    const line = { breaker: this.options.name, state };
    if (state === 'open') this.options.log.warn(line, 'circuit breaker opened: falling back');
    else
      this.options.log.info(line, `circuit breaker ${state === 'closed' ? 'closed' : 'half-open'}`);
  }
}
