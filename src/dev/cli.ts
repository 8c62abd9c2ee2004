/**
 * `npm run db:migrate` and `npm run db:seed`: brings the database to the latest
 * schema and, for `seed`, fills an empty one with the demo program. Without
 * DATABASE_URL it works on the same embedded PostgreSQL that `npm start` uses.
 */
import { ConfigError, loadConfig } from '../config';
import { toIsoDate } from '../domain/calendar';
import { createLogger } from '../logger';
import { openDatabase, prepareDatabase } from './database-bootstrap';

const COMMANDS = ['migrate', 'seed'] as const;
type Command = (typeof COMMANDS)[number];

/** The CLI runs one statement at a time, so it never needs the service's pool. */
const CLI_POOL_MAX = 2;

async function run(command: Command): Promise<void> {
  // It serves nothing, so production asks it for no TLS files.
  const config = loadConfig(process.env, { serves: false });
  // The bootstrap's JSON lines are for the service's logs; the CLI reports in plain words below.
  const log = createLogger('silent');
  const db = await openDatabase(config.database, {
    poolMax: CLI_POOL_MAX,
    log,
    serverLog: (message) => console.log(message),
  });
  try {
    if (db.embedded) {
      console.log(
        `using embedded PostgreSQL in ${config.database.embeddedDir} on port ${config.database.embeddedPort}`,
      );
    }
    const { applied, seeded } = await prepareDatabase(db.orm, {
      migrate: true,
      seedDemo: command === 'seed',
      today: toIsoDate(new Date()),
      log,
    });
    console.log(
      applied.length === 0
        ? 'schema already up to date'
        : `applied migrations: ${applied.join(', ')}`,
    );
    if (command !== 'seed') return;
    if (!seeded) {
      console.log('seed skipped: the database already holds schedule data');
      return;
    }
    const { summary: s, ms } = seeded;
    console.log(
      `seeded demo program ${s.firstDay} to ${s.lastDay} in ${ms} ms: ` +
        `${s.faculty} faculty, ${s.residents} residents, ${s.blocks} blocks, ` +
        `${s.assignments} assignments, ${s.calls} calls, ${s.absences} absences`,
    );
  } finally {
    // A failure to let go is reported, but does not turn a finished command into a failed one.
    await db.close().catch((error: unknown) => {
      const failures = error instanceof AggregateError ? (error.errors as unknown[]) : [error];
      for (const failure of failures) {
        console.error(failure instanceof Error ? failure.message : String(failure));
      }
    });
  }
}

function isCommand(value: string | undefined): value is Command {
  return (COMMANDS as readonly (string | undefined)[]).includes(value);
}

const command = process.argv[2];
if (!isCommand(command)) {
  console.error(`usage: tsx src/dev/cli.ts <${COMMANDS.join('|')}>`);
  process.exitCode = 2;
} else {
  run(command).catch((error: unknown) => {
    // A bad setting is the user's to fix and needs no stack; anything else is ours to debug.
    const detail =
      error instanceof ConfigError
        ? error.message
        : error instanceof Error
          ? (error.stack ?? error.message)
          : String(error);
    console.error(`db ${command} failed: ${detail}`);
    process.exitCode = 1;
  });
}
