/**
 * Whether an error means that the database connection failed, rather than that
 * the work was wrong. Drivers report this in several shapes, and only some of
 * them carry a SQLSTATE: a socket error code, a PostgreSQL code of class 08
 * (connection exception) or 57P0x (the server shut the session down), or only
 * a message (node-postgres once the socket has closed under it, knex once the
 * transaction that owned the connection has been torn down). The transaction
 * runner classifies every database failure through this one function.
 */
export function isConnectionFailure(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e && depth < 5; depth++) {
    if (isOwnConnectionFailure(e)) return true;
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
  // node-postgres: the socket closed mid-query, or the client was already broken or closed.
  'Connection terminated',
  'connection error and is not queryable',
  'Client was closed and is not queryable',
  'Connection ended unexpectedly',
  // knex: the transaction was torn down when its connection failed.
  'Transaction query already complete',
];

function isOwnConnectionFailure(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && (CONNECTION_CODES.has(code) || code.startsWith('08')))
    return true;
  const message = (error as { message?: unknown }).message;
  return typeof message === 'string' && CONNECTION_MESSAGES.some((m) => message.includes(m));
}
