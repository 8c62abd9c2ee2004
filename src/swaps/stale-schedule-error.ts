import { OptimisticLockError } from '@mikro-orm/core';

/**
 * A row changed between the moment a write read it and the moment it locked
 * it. It is an optimistic-lock failure, so the transaction runner retries the
 * whole unit of work on fresh data.
 */
export class StaleScheduleError extends OptimisticLockError {
  constructor(table: string, id: string) {
    super(`${table} ${id} changed after it was read`);
    this.name = 'StaleScheduleError';
  }
}
