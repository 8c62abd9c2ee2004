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
