import type { EntityManager } from '@mikro-orm/postgresql';
import type { Client } from 'pg';

/**
 * The node-postgres client under `em`'s open transaction, or undefined when it
 * has none. This is the one place that reaches through the ORM to the driver:
 * under MikroORM 6 the transaction is knex's, whose transaction client hands
 * out the one connection it holds.
 */
export async function connectionOf(em: EntityManager): Promise<Client | undefined> {
  const trx: unknown = em.getTransactionContext();
  const client = (trx as { client?: { acquireConnection?: () => Promise<unknown> } } | undefined)
    ?.client;
  if (typeof client?.acquireConnection !== 'function') return undefined;
  const connection = await client.acquireConnection();
  return isPgClient(connection) ? connection : undefined;
}

/**
 * Ends a connection whose reply never came, at the socket: the query waiting on
 * it fails at once ("Connection terminated unexpectedly"), the pool sees the
 * client broken and discards it instead of handing it out again, and
 * PostgreSQL rolls the session's transaction back when it notices the session
 * gone. Nothing is sent (a black-holed peer would not answer a goodbye either).
 */
export function destroyConnection(connection: Client | undefined): void {
  const stream = (connection as { connection?: { stream?: { destroy(): void } } } | undefined)
    ?.connection?.stream;
  stream?.destroy();
}

function isPgClient(value: unknown): value is Client {
  return typeof (value as { query?: unknown } | null)?.query === 'function';
}

/**
 * Makes `connection` destroy itself when a query's reply takes longer than
 * `replyTimeoutMs`: the backstop for a hang no caller's limit can reach (a
 * BEGIN or a read whose connection the transaction runner never got hold
 * of), so a partitioned connection is never kept, or handed out again, for
 * good. Every statement the runner sends is cut off by PostgreSQL well before
 * (statement_timeout never exceeds the ceiling), so only a lost reply waits
 * this long. Called once per new connection, by the pool.
 */
export function watchReplies(connection: Client, replyTimeoutMs: number): void {
  const query = connection.query.bind(connection) as (...args: unknown[]) => unknown;
  const watched = (...args: unknown[]): unknown => {
    const timer = setTimeout(() => destroyConnection(connection), replyTimeoutMs);
    timer.unref();
    const last = args.length - 1;
    const callback = args[last];
    if (typeof callback === 'function') {
      args[last] = (...reply: unknown[]) => {
        clearTimeout(timer);
        return (callback as (...a: unknown[]) => unknown)(...reply);
      };
      return query(...args);
    }
    const result = query(...args);
    if (result instanceof Promise)
      result.then(
        () => clearTimeout(timer),
        () => clearTimeout(timer),
      );
    // A submittable (a cursor, a stream) reports on its own schedule: not watched.
    else clearTimeout(timer);
    return result;
  };
  connection.query = watched as Client['query'];
}
