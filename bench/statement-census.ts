import { Redis } from 'ioredis';
import type pg from 'pg';

type QueryFn = (...args: unknown[]) => unknown;
type Patchable = { query: QueryFn };

/**
 * Runs `work` while counting every statement that any pg Client of `classes`
 * sends, and returns their texts in order. Used on a single swap per mode, never
 * during a measurement, because the wrapper itself costs time.
 */
export async function statementsOf(
  classes: ReadonlyArray<typeof pg.Client>,
  work: () => Promise<void>,
): Promise<string[]> {
  const seen: string[] = [];
  const prototypes = classes.map((cls) => cls.prototype as unknown as Patchable);
  const originals = prototypes.map((proto) => proto.query);
  prototypes.forEach((proto, i) => {
    const original = originals[i]!;
    proto.query = function (this: unknown, ...args: unknown[]) {
      const first = args[0];
      const text = typeof first === 'string' ? first : (first as { text?: string } | null)?.text;
      if (text !== undefined) seen.push(text.replace(/\s+/g, ' ').trim());
      return original.apply(this, args);
    };
  });
  try {
    await work();
  } finally {
    prototypes.forEach((proto, i) => {
      proto.query = originals[i]!;
    });
  }
  return seen;
}

type SendCommand = (command: { name: string }, ...rest: unknown[]) => unknown;

/**
 * What ioredis sends when a connection (re)opens, before any work: whether a
 * client happened to connect during the census swap says nothing of the swap.
 */
const CONNECTION_SETUP = new Set(['info', 'hello', 'auth', 'select', 'client', 'readonly']);

/**
 * Runs `work` while recording the name of every command any ioredis client
 * sends for the work (scripts appear as evalsha; connection set-up is left
 * out). Like `statementsOf`, never during a measurement.
 */
export async function redisCommandsOf(work: () => Promise<void>): Promise<string[]> {
  const seen: string[] = [];
  const proto = Redis.prototype as unknown as { sendCommand: SendCommand };
  const original = proto.sendCommand;
  proto.sendCommand = function (this: unknown, command, ...rest) {
    if (!CONNECTION_SETUP.has(command.name)) seen.push(command.name);
    return original.call(this, command, ...rest);
  };
  try {
    await work();
  } finally {
    proto.sendCommand = original;
  }
  return seen;
}

const VERSION_CHECK = 'version check';

/**
 * What one statement does, whoever wrote it (MikroORM quotes identifiers and
 * inlines values; the raw path binds $n parameters): its verb and main table,
 * so two paths' censuses can be compared step by step. A select that locks is
 * `lock <table>`; one that reads absences is the rules' facts; a select of
 * versioned rows that locks nothing is the check MikroORM makes before it
 * updates them.
 */
export function labelOf(statement: string): string {
  const text = statement.toLowerCase().replace(/"/g, '');
  // MikroORM 7 (kysely) opens a transaction with START TRANSACTION.
  if (/^(begin|start transaction)\b/.test(text)) return 'begin';
  const verb = /^(commit|rollback)\b/.exec(text)?.[1];
  if (verb) return verb;
  if (text.includes('set_config(')) return 'set timeouts';
  if (text.includes('pg_advisory_xact_lock')) return 'advisory locks';
  if (text.includes('audit_append(')) return 'append audit row';
  const locks = /\bfor update\b/.test(text);
  const bare = text.replace(/\bfor update( of \w+)?/g, '').replace(/\bdo update set\b/g, '');
  const write = /\b(insert into|update)\s+(\w+)/.exec(bare);
  if (write) return `${write[1] === 'update' ? 'update' : 'insert'} ${write[2]}`;
  if (/\bfrom absence\b/.test(text)) return 'read schedule facts';
  const table = /\bfrom\s+(\w+)/.exec(text)?.[1] ?? '?';
  if (locks) return `lock ${table}`;
  return /\bversion\b/.test(text) ? `${VERSION_CHECK} ${table}` : `read ${table}`;
}

/**
 * How `raw` differs from `service`, step by step, once the version checks only
 * the ORM makes are set aside (the raw updates check the version in their
 * WHERE): what each sends that the other does not, and whether the common
 * steps come in the same order.
 */
export function compareCensus(
  service: readonly string[],
  raw: readonly string[],
): { onlyService: string[]; onlyRaw: string[]; sameOrder: boolean; ormChecks: number } {
  const all = service.map(labelOf);
  const serviceSteps = all.filter((l) => !l.startsWith(VERSION_CHECK));
  const rawSteps = raw.map(labelOf);
  const common = (steps: string[], other: string[]) => steps.filter((s) => other.includes(s));
  return {
    onlyService: without(serviceSteps, rawSteps),
    onlyRaw: without(rawSteps, serviceSteps),
    sameOrder:
      common(serviceSteps, rawSteps).join('|') === common(rawSteps, serviceSteps).join('|'),
    ormChecks: all.length - serviceSteps.length,
  };
}

/** `a` minus `b`, as multisets. */
function without(a: readonly string[], b: readonly string[]): string[] {
  const left = [...b];
  return a.filter((x) => {
    const i = left.indexOf(x);
    if (i < 0) return true;
    left.splice(i, 1);
    return false;
  });
}
