/**
 * Whether an error means that the database connection failed, rather than that
 * the work was wrong. Drivers report this in several shapes, and only some of
 * them carry a SQLSTATE: a socket error code, a PostgreSQL code of class 08
 * (connection exception) or 57P0x (the server shut the session down), or only
 * a message (node-postgres once the socket has closed under it, pg-pool when
 * opening a connection timed out). The transaction runner classifies every
 * database failure through this function and {@link isPoolTimeout}.
 */
export function isConnectionFailure(error: unknown): boolean {
  return someCause(error, isOwnConnectionFailure);
}

/**
 * Whether the wait for a free pooled connection timed out: every connection
 * was busy for pg-pool's `connectionTimeoutMillis`. The database is reachable
 * but saturated, so it is worth telling apart from a lost connection. pg-pool
 * gives it no code, only this message, raw or wrapped by MikroORM.
 */
export function isPoolTimeout(error: unknown): boolean {
  return someCause(
    error,
    (e) => (e as { message?: unknown }).message === 'timeout exceeded when trying to connect',
  );
}

/** Whether `error` or one of its causes (MikroORM and pg-pool wrap) satisfies `test`. */
function someCause(error: unknown, test: (e: object) => boolean): boolean {
  for (let e: unknown = error, depth = 0; e && depth < 5; depth++) {
    if (typeof e === 'object' && test(e)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/** Socket errors and the SQLSTATEs of a session the server ended or never began. */
const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  // admin_shutdown, crash_shutdown, cannot_connect_now, database_dropped, idle_session_timeout
  '57P01',
  '57P02',
  '57P03',
  '57P04',
  '57P05',
  // too_many_connections
  '53300',
]);

/** What drivers say when the connection is gone and they have no code to give. */
const CONNECTION_MESSAGES = [
  // node-postgres: the socket closed mid-query ("Connection terminated
  // unexpectedly"); pg-pool: opening a new connection took longer than
  // connectionTimeoutMillis ("Connection terminated due to connection timeout").
  'Connection terminated',
  // node-postgres: the client was already broken or closed.
  'connection error and is not queryable',
  'Client was closed and is not queryable',
  'Connection ended unexpectedly',
  // kysely (under MikroORM 7) does not tear a transaction down when its
  // connection fails, as knex did ("Transaction query already complete"): the
  // next statement reaches the broken client and fails with one of the above.
  // Its own "Transaction is already committed / rolled back" means the code
  // used a finished transaction, a bug, so it is deliberately not listed.
];

function isOwnConnectionFailure(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && (CONNECTION_CODES.has(code) || code.startsWith('08')))
    return true;
  const message = (error as { message?: unknown }).message;
  return typeof message === 'string' && CONNECTION_MESSAGES.some((m) => message.includes(m));
}
