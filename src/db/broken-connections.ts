import type { Pool, PoolClient } from 'pg';

/**
 * Hands back to the pool, for it to discard, a checked-out connection whose
 * server session ended (terminated, restarted, network lost) in a transaction.
 *
 * MikroORM 7 holds a transaction's connection through kysely, which releases
 * it only when COMMIT or ROLLBACK succeeds; on a dead connection both fail, so
 * without this the connection stays checked out for good and each database
 * outage shrinks the pool by the transactions it interrupted (MikroORM 6 with
 * knex released it). The release waits for the next turn of the event loop:
 * outside a transaction kysely releases the connection itself as the failed
 * query settles, and a second release would throw.
 */
export function releaseBrokenConnections(pool: Pool): void {
  const checkedOut = new Set<PoolClient>();
  const watched = new WeakSet<PoolClient>();
  pool.on('acquire', (client) => {
    checkedOut.add(client);
    if (watched.has(client)) return;
    watched.add(client);
    const drop = (error: Error) =>
      setImmediate(() => {
        if (checkedOut.delete(client)) client.release(error);
      });
    client.on('error', drop);
    client.on('end', () => drop(new Error('the database connection ended')));
  });
  pool.on('release', (_error, client) => checkedOut.delete(client));
  pool.on('remove', (client) => checkedOut.delete(client));
}
