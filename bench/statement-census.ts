import { Redis } from 'ioredis';
import type pg from 'pg';

type QueryFn = (...args: unknown[]) => unknown;
type Patchable = { query: QueryFn };

/** Records the statements pg Clients send while a piece of work runs. */
export interface StatementCounter {
  /** Runs `work` and returns the texts of the statements sent meanwhile, in order. */
  during(work: () => Promise<void>): Promise<string[]>;
}

/**
 * Wraps `query` of every pg Client class of `classes`, for the rest of the
 * process, recording only while `during` runs. It must be installed before
 * any mode connects: the service binds each new connection's `query` as it
 * connects (see src/db/hung-connection.ts), so a wrapper put on the prototype
 * later would never see its statements. Outside `during` the wrapper costs
 * one check per statement.
 */
export function installStatementCounter(
  classes: ReadonlyArray<typeof pg.Client>,
): StatementCounter {
  let seen: string[] | undefined;
  for (const proto of classes.map((cls) => cls.prototype as unknown as Patchable)) {
    const original = proto.query;
    proto.query = function (this: unknown, ...args: unknown[]) {
      if (seen) {
        const first = args[0];
        const text = typeof first === 'string' ? first : (first as { text?: string } | null)?.text;
        if (text !== undefined) seen.push(text.replace(/\s+/g, ' ').trim());
      }
      return original.apply(this, args);
    };
  }
  return {
    during: async (work) => {
      const mine: string[] = [];
      seen = mine;
      try {
        await work();
      } finally {
        seen = undefined;
      }
      return mine;
    },
  };
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
 * out). Like the statement counter, never during a measurement.
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
