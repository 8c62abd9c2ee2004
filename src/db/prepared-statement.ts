import type { EntityManager } from '@mikro-orm/postgresql';
import { connectionOf } from './hung-connection';

/**
 * A named, parameterized statement (`$1`, `$2`… placeholders). PostgreSQL
 * parses it once per connection and keeps its plan; every later execution
 * sends only the name and the values. `em.execute` cannot do this: MikroORM
 * writes every value into the SQL text, so each call is a new statement to
 * parse and plan, which for the schedule's CTEs costs more than running them.
 */
export interface PreparedStatement<Row> {
  /** Unique per text: a connection refuses a known name with another text. */
  readonly name: string;
  readonly text: string;
  /** Only carries `Row` for the type checker. */
  readonly rowType?: Row;
}

/** Declares a prepared statement; `name` must be unique across the service. */
export function preparedStatement<Row>(name: string, text: string): PreparedStatement<Row> {
  return { name, text };
}

/**
 * Runs `statement` with `values` on the connection of `em`'s open transaction,
 * so it is part of the unit of work: it commits or rolls back with whatever
 * the ORM flushes. Arrays are bound as PostgreSQL arrays, `null` as NULL.
 * Driver errors keep their SQLSTATE in `code`, which the transaction runner
 * classifies exactly as it does the ORM's.
 */
export async function runPrepared<Row>(
  em: EntityManager,
  statement: PreparedStatement<Row>,
  values: readonly unknown[],
): Promise<Row[]> {
  const connection = await connectionOf(em);
  if (!connection)
    throw new Error(`prepared statement ${statement.name} needs an open transaction`);
  const result = await connection.query<Row & object>({
    name: statement.name,
    text: statement.text,
    values: [...values],
  });
  return result.rows;
}

/** A statement with the values of its own placeholders, to be sent riding along with another. */
export interface BoundStatement {
  readonly statement: PreparedStatement<object>;
  readonly values: readonly unknown[];
}

/**
 * `first` and `riders` as one statement, so one round trip runs them all, in
 * one snapshot: each becomes a CTE, the riders' placeholders numbered after
 * first's, and the statement returns first's rows. Every rider runs to
 * completion whether or not first returns a row: PostgreSQL runs a
 * data-modifying CTE regardless, and a query rider (a function with effects,
 * like `audit_append`) is counted. They must not depend on each other's
 * writes, which a single snapshot cannot see. Placeholders are found as `$n`
 * anywhere in the texts, so none may contain a literal `$` followed by a digit.
 */
export function withRiders<Row>(
  first: PreparedStatement<Row>,
  riders: readonly PreparedStatement<object>[],
): PreparedStatement<Row> {
  if (riders.length === 0) return first;
  let offset = placeholderCount(first.text);
  const ctes = [`s0 as (${first.text})`];
  const ran: string[] = [];
  riders.forEach((rider, i) => {
    const shift = offset;
    ctes.push(
      `r${i} as (${rider.text.replace(/\$(\d+)/g, (_m, n: string) => `$${Number(n) + shift}`)})`,
    );
    if (!MODIFYING.test(rider.text)) ran.push(`(select count(*) from r${i})`);
    offset += placeholderCount(rider.text);
  });
  return preparedStatement<Row>(
    [first.name, ...riders.map((r) => r.name)].join('+'),
    // A condition on no column of s0 is checked once, before s0 is read: it
    // runs the query riders even when s0 has no row.
    `with ${ctes.join(',\n')}\nselect * from s0${ran.length ? ` where ${ran.join(' + ')} >= 0` : ''}`,
  );
}

/** A statement PostgreSQL runs to completion as a CTE even when nothing reads it. */
const MODIFYING = /^\s*(insert|update|delete|merge)\b/i;

function placeholderCount(text: string): number {
  let highest = 0;
  for (const [, n] of text.matchAll(/\$(\d+)/g)) highest = Math.max(highest, Number(n));
  return highest;
}
