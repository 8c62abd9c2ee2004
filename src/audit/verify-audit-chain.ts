import type { TransactionRunner } from '../db/transaction-runner';
import type { CallContext } from '../domain/call-context';

/** Where a chain breaks first. */
export interface BrokenLink {
  /**
   * PREVIOUS_HASH: the row's prev_hash is not the hash of the row before it (a
   * row before it was deleted, inserted or reordered). ROW_HASH: the row's hash
   * is not that of its own fields (the row was edited). HEAD: the chain's head
   * names another last row (rows were deleted from the end).
   */
  kind: 'PREVIOUS_HASH' | 'ROW_HASH' | 'HEAD';
  /** The row where the chain breaks; for HEAD, the last row the head names. */
  eventId: string;
  /** The row before it in the table (0 if none); for HEAD, the last row the table holds. */
  previousEventId: string;
  expectedHash: string;
  /** Empty when there is no hash to find (a missing row, or a malformed prev_hash). */
  foundHash: string;
}

export interface ChainVerdict {
  intact: boolean;
  /** Rows read and recomputed. */
  eventsChecked: number;
  firstBrokenLink: BrokenLink | undefined;
  /** The head as the table records it: worth keeping outside the database to compare later. */
  headEventId: string;
  headHash: string;
}

interface VerdictRow {
  checked: number;
  kind: BrokenLink['kind'] | null;
  eventId: string | null;
  previousEventId: string | null;
  expectedHash: string | null;
  foundHash: string | null;
  headEventId: string;
  headHash: string;
  lastEventId: string | null;
  lastHash: string | null;
}

const GENESIS = '0'.repeat(64);

// One statement, so the rows and the head are read in one snapshot. Each row is
// checked against the row before it by id, which is the chain's order.
const VERIFY_SQL = `
with checked as (
  select e.id, e.prev_hash, e.hash, audit_event_hash(e) as recomputed,
         coalesce(lag(e.hash) over by_id, '${GENESIS}') as expected_prev,
         coalesce(lag(e.id) over by_id, 0) as previous_id
    from audit_event e
  window by_id as (order by e.id)
), broken as (
  select case when prev_hash is distinct from expected_prev then 'PREVIOUS_HASH' else 'ROW_HASH' end as kind,
         id, previous_id, prev_hash, hash, recomputed, expected_prev
    from checked
   where prev_hash is distinct from expected_prev or hash is distinct from recomputed
   order by id
   limit 1
), last as (
  select id, hash from audit_event order by id desc limit 1
)
select (select count(*) from checked)::float8 as "checked",
       b.kind,
       b.id::text as "eventId",
       b.previous_id::text as "previousEventId",
       case b.kind when 'PREVIOUS_HASH' then b.expected_prev else b.recomputed end as "expectedHash",
       case b.kind when 'PREVIOUS_HASH' then b.prev_hash else b.hash end as "foundHash",
       h.last_event_id::text as "headEventId", h.hash as "headHash",
       l.id::text as "lastEventId", l.hash as "lastHash"
  from audit_chain_head h left join broken b on true left join last l on true`;

/**
 * VerifyAuditChain: recomputes every row's hash from its predecessor's and its
 * own canonical fields, in chain order, and checks that the head names the
 * last row; reports the first break, if any.
 */
export class VerifyAuditChain {
  constructor(private readonly transactions: TransactionRunner) {}

  async verify(call: CallContext): Promise<ChainVerdict> {
    // One statement (its CTEs share its snapshot), so no transaction.
    const [row] = await this.transactions.outsideTransaction(call.budget, (em) =>
      em.execute<VerdictRow[]>(VERIFY_SQL),
    );
    if (!row) throw new Error('the audit chain has no head row; is the database migrated?');
    const head = { headEventId: row.headEventId, headHash: row.headHash };
    const verdict = (firstBrokenLink: BrokenLink | undefined): ChainVerdict => ({
      intact: firstBrokenLink === undefined,
      eventsChecked: row.checked,
      firstBrokenLink,
      ...head,
    });
    if (row.kind && row.eventId) {
      return verdict({
        kind: row.kind,
        eventId: row.eventId,
        previousEventId: row.previousEventId ?? '0',
        expectedHash: row.expectedHash ?? '',
        foundHash: row.foundHash ?? '',
      });
    }
    const lastEventId = row.lastEventId ?? '0';
    const lastHash = row.lastHash ?? GENESIS;
    if (lastEventId !== row.headEventId || lastHash !== row.headHash) {
      return verdict({
        kind: 'HEAD',
        eventId: row.headEventId,
        previousEventId: lastEventId,
        expectedHash: row.headHash,
        foundHash: lastHash,
      });
    }
    return verdict(undefined);
  }
}
