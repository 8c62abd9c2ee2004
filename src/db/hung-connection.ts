import type { EntityManager } from '@mikro-orm/postgresql';
import type { Client, Pool } from 'pg';

/**
 * A statement no pooled connection sends: a connection prepared by
 * {@link prepareConnection} answers it itself, with its own node-postgres
 * client as the only row. MikroORM 7 runs each transaction on a kysely
 * connection that keeps its client private; asking through it is the one way
 * to learn which client (and so which socket) a transaction holds, and it
 * costs no round trip. (Were it ever sent, PostgreSQL would answer the
 * comment-only statement with no rows, and the transaction would merely not
 * be destroyable.)
 */
const WHICH_CLIENT = '/* swap-service: which client holds this transaction */';

/**
 * The node-postgres client under `em`'s open transaction, or undefined when it
 * has none. This is the one place that reaches through the ORM to the driver:
 * the transaction context is kysely's, whose executor hands out the one
 * connection the transaction holds (once its statement in flight, if any, has
 * settled).
 */
export async function connectionOf(em: EntityManager): Promise<Client | undefined> {
  const trx = em.getTransactionContext<{ getExecutor?: () => KyselyExecutor | undefined }>();
  const executor = typeof trx?.getExecutor === 'function' ? trx.getExecutor() : undefined;
  if (!executor) return undefined;
  // A compiled query as kysely's PostgreSQL connection reads one: text and parameters.
  const result = await executor.provideConnection((connection) =>
    connection.executeQuery({ sql: WHICH_CLIENT, parameters: [] }),
  );
  const [client] = result.rows;
  return isPgClient(client) ? client : undefined;
}

interface KyselyExecutor {
  provideConnection<T>(
    consumer: (connection: {
      executeQuery(query: { sql: string; parameters: unknown[] }): Promise<{ rows: unknown[] }>;
    }) => Promise<T>,
  ): Promise<T>;
}

/**
 * Ends a connection whose reply never came, at the socket: the query waiting on
 * it fails at once ("Connection terminated unexpectedly"), the client ends and
 * is handed back to the pool to be discarded (see `releaseBrokenConnections`)
 * instead of being handed out again, and PostgreSQL rolls the session's
 * transaction back when it notices the session gone. Nothing is sent (a
 * black-holed peer would not answer a goodbye either).
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
 * Prepares every connection `pool` opens, before its first use: it answers
 * {@link connectionOf}'s question, and, with `replyTimeoutMs`, destroys itself
 * when a query's reply takes longer than that (see {@link watchReplies}).
 */
export function prepareConnections(pool: Pool, replyTimeoutMs?: number): void {
  // pg-pool emits 'connect' synchronously before it hands a new client out.
  pool.on('connect', (client) => prepareConnection(client, replyTimeoutMs));
}

function prepareConnection(connection: Client, replyTimeoutMs: number | undefined): void {
  const query = connection.query.bind(connection) as (...args: unknown[]) => unknown;
  const send =
    replyTimeoutMs === undefined ? query : watchReplies(connection, query, replyTimeoutMs);
  const prepared = (...args: unknown[]): unknown => {
    if (args[0] === WHICH_CLIENT)
      return Promise.resolve({ command: 'SELECT', rowCount: 1, rows: [connection], fields: [] });
    return send(...args);
  };
  connection.query = prepared as Client['query'];
}

/**
 * `query`, destroying `connection` when a reply takes longer than
 * `replyTimeoutMs`: the backstop for a hang no caller's limit can reach (a
 * BEGIN or a read whose connection the transaction runner never got hold
 * of), so a partitioned connection is never kept, or handed out again, for
 * good. Every statement the runner sends is cut off by PostgreSQL well before
 * (statement_timeout never exceeds the ceiling), so only a lost reply waits
 * this long.
 */
function watchReplies(
  connection: Client,
  query: (...args: unknown[]) => unknown,
  replyTimeoutMs: number,
): (...args: unknown[]) => unknown {
  return (...args: unknown[]): unknown => {
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
}
