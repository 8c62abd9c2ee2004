/** The source of "now" for business rules (past weeks, rollback windows). Injected so tests can move it. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };
