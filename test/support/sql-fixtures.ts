import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';

/**
 * Raw SQL helpers for tests that need a second connection beside the ORM: to
 * hold locks, to play a concurrent writer, and to look at what the server sees.
 */

/** A plain pg client on `url`, outside any ORM pool; the caller ends it. */
export async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  return client;
}

/** The server process id behind `client`, to find it in pg_stat_activity and pg_locks. */
export async function backendPid(client: pg.Client): Promise<number> {
  const { rows } = await client.query<{ pid: number }>('select pg_backend_pid() as pid');
  return rows[0]!.pid;
}

/** Inserts a faculty member and returns the id. */
export async function insertFaculty(client: pg.Client, name: string): Promise<string> {
  const id = randomUUID();
  await client.query(
    `insert into person (id, name, kind, faculty_role) values ($1, $2, 'faculty', 'core')`,
    [id, name],
  );
  return id;
}

/** The committed row of a person, as another session sees it. */
export async function personRow(
  client: pg.Client,
  id: string,
): Promise<{ name: string; version: number } | undefined> {
  const { rows } = await client.query<{ name: string; version: number }>(
    'select name, version from person where id = $1',
    [id],
  );
  return rows[0];
}

/** Empties every table of the schedule, so each test starts from the same state. */
export async function truncateAll(client: pg.Client | pg.Pool): Promise<void> {
  await client.query(
    'truncate conflict_alert, swap_record, faculty_week, absence, call_assignment, assignment, block, person cascade',
  );
}

export interface Session {
  pid: number;
  state: string | null;
  waitEventType: string | null;
}

/** Client sessions on `database`, except the one asking. */
export async function sessionsOn(client: pg.Client, database: string): Promise<Session[]> {
  const { rows } = await client.query<Session>(
    `select pid, state, wait_event_type as "waitEventType"
       from pg_stat_activity
      where datname = $1 and backend_type = 'client backend' and pid <> pg_backend_pid()`,
    [database],
  );
  return rows;
}

/** A promise with its resolver outside, to pause a unit of work until the test lets it go. */
export interface Gate {
  promise: Promise<void>;
  open(): void;
}

export function gate(): Gate {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

/**
 * Opens once `parties` callers have arrived; later arrivals pass straight
 * through, so a retried attempt never waits for a partner that has moved on.
 */
export function barrier(parties: number): { arrive(): Promise<void> } {
  const opened = gate();
  let arrived = 0;
  return {
    arrive() {
      if (++arrived >= parties) opened.open();
      return opened.promise;
    },
  };
}

/**
 * Polls until `condition` holds, for 30 s at most. The limit only keeps a
 * broken test from hanging; what the test asserts is that the state is
 * reached at all, so it is generous enough for a machine under load.
 */
export async function waitFor(
  what: string,
  condition: () => Promise<boolean> | boolean,
): Promise<void> {
  const giveUpAt = Date.now() + 30_000;
  while (!(await condition())) {
    if (Date.now() > giveUpAt) throw new Error(`gave up waiting for ${what}`);
    await sleep(20);
  }
}
