import { createHash } from 'node:crypto';

/** A moved row as the answer and the stored record both state it. */
export interface MovedRow {
  id: string;
  from: string;
  to: string;
  version: number;
}

/**
 * One hash of what a swap moved, the same whether it is computed from an
 * answer on the wire or from the record in the database, so the checker can
 * tell that the caller was told exactly what was stored.
 */
export function movesDigest(assignments: readonly MovedRow[], calls: readonly MovedRow[]): string {
  const lines = [
    ...assignments.map((m) => `a ${m.id} ${m.from} ${m.to} ${m.version}`),
    ...calls.map((m) => `c ${m.id} ${m.from} ${m.to} ${m.version}`),
  ].sort();
  return createHash('sha256').update(lines.join('\n')).digest('hex');
}
