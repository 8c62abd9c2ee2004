import type { EntityManager } from '@mikro-orm/postgresql';
import { sqlArray } from '../db/sql-array';
import type { AuditEntry } from './audit-event';

/**
 * Appends one row to the chain in `em`'s transaction (the migration's
 * `audit_append` seals it). It locks the chain's head until that transaction
 * ends, so it must be the transaction's last statement: every other writer of
 * the trail waits for this COMMIT, and only for it.
 */
export async function appendAuditEntry(em: EntityManager, entry: AuditEntry): Promise<void> {
  await em.execute(`select audit_append(?, ?, ?, ?, ?, ?, ?, ?, ?, ?::uuid[], ?::uuid[], ?)`, [
    entry.principal,
    entry.onBehalfOf,
    entry.peer,
    entry.method,
    entry.requestId,
    entry.requestFingerprint,
    entry.status,
    entry.reason,
    entry.replayed,
    sqlArray(entry.swapIds),
    sqlArray(entry.conflictIds),
    entry.traceId,
  ]);
}
