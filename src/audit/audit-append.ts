import type { EntityManager } from '@mikro-orm/postgresql';
import { preparedStatement, runPrepared } from '../db/prepared-statement';
import type { AuditEntry } from './audit-event';

/**
 * Appends one row to the chain (the migration's `audit_append` seals it). It
 * locks the chain's head until the transaction ends, so it must be the
 * transaction's last statement: every other writer of the trail waits for
 * this COMMIT, and only for it.
 */
export const APPEND_AUDIT_ENTRY = preparedStatement<object>(
  'audit_append',
  `select audit_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::uuid[], $11::uuid[], $12)`,
);

/** Appends one row to the chain in `em`'s transaction, as its last statement. */
export async function appendAuditEntry(em: EntityManager, entry: AuditEntry): Promise<void> {
  await runPrepared(em, APPEND_AUDIT_ENTRY, auditEntryValues(entry));
}

/** The values of {@link APPEND_AUDIT_ENTRY}'s placeholders for `entry`. */
export function auditEntryValues(entry: AuditEntry): readonly unknown[] {
  return [
    entry.principal,
    entry.onBehalfOf,
    entry.peer,
    entry.method,
    entry.requestId,
    entry.requestFingerprint,
    entry.status,
    entry.reason,
    entry.replayed,
    entry.swapIds,
    entry.conflictIds,
    entry.traceId,
  ];
}
