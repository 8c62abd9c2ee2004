/**
 * `npm run db:migrate` and `npm run db:seed`: brings the database to the latest
 * schema and, for `seed`, fills an empty one with the demo program. Without
 * DATABASE_URL it works on the same embedded PostgreSQL that `npm start` uses.
 */
import type { MikroORM } from '@mikro-orm/postgresql';
import { ConfigError, loadConfig } from '../config';
import { isoDateOf } from '../domain/calendar';
import { isDatabaseEmpty, seedDemoProgram } from './demo-seed';
import { type EmbeddedDatabase, startEmbeddedDatabase } from './embedded-database';
import { migrateToLatest } from './migrate';
import { createOrm } from './orm';

const COMMANDS = ['migrate', 'seed'] as const;
type Command = (typeof COMMANDS)[number];

/** Database name on the embedded server; the service opens the same one. */
const EMBEDDED_DATABASE = 'swap';
/** The CLI runs one statement at a time, so it never needs the service's pool. */
const CLI_POOL_MAX = 2;

async function run(command: Command): Promise<void> {
  const config = loadConfig(process.env);
  let embedded: EmbeddedDatabase | undefined;
  let orm: MikroORM | undefined;
  try {
    let url = config.database.url;
    if (url === undefined) {
      embedded = await startEmbeddedDatabase({
        dataDir: config.database.embeddedDir,
        port: config.database.embeddedPort,
        database: EMBEDDED_DATABASE,
        log: (message) => console.log(message),
      });
      url = embedded.url;
      console.log(
        `using embedded PostgreSQL in ${config.database.embeddedDir} on port ${config.database.embeddedPort}`,
      );
    }
    orm = await createOrm({ clientUrl: url, poolMax: CLI_POOL_MAX });

    const applied = await migrateToLatest(orm);
    console.log(
      applied.length === 0
        ? 'schema already up to date'
        : `applied migrations: ${applied.join(', ')}`,
    );
    if (command !== 'seed') return;

    const em = orm.em.fork();
    if (!(await isDatabaseEmpty(em))) {
      console.log('seed skipped: the database already holds schedule data');
      return;
    }
    const startedAt = performance.now();
    const s = await seedDemoProgram(em, { today: isoDateOf(new Date()) });
    const ms = Math.round(performance.now() - startedAt);
    console.log(
      `seeded demo program ${s.firstDay} to ${s.lastDay} in ${ms} ms: ` +
        `${s.faculty} faculty, ${s.residents} residents, ${s.blocks} blocks, ` +
        `${s.assignments} assignments, ${s.calls} calls, ${s.absences} absences`,
    );
  } finally {
    // Each step is attempted even if an earlier one fails, so no server is left running.
    await orm
      ?.close()
      .catch((error: unknown) => console.error(`closing the ORM failed: ${String(error)}`));
    await embedded
      ?.stop()
      .catch((error: unknown) =>
        console.error(`stopping embedded PostgreSQL failed: ${String(error)}`),
      );
  }
}

function isCommand(value: string | undefined): value is Command {
  return (COMMANDS as readonly (string | undefined)[]).includes(value);
}

const command = process.argv[2];
if (!isCommand(command)) {
  console.error(`usage: tsx src/db/cli.ts <${COMMANDS.join('|')}>`);
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
