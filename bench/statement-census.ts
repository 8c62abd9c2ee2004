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
 * Runs `work` while recording the name of every command any ioredis client
 * sends (scripts appear as evalsha). Like `statementsOf`, never during a
 * measurement.
 */
export async function redisCommandsOf(work: () => Promise<void>): Promise<string[]> {
  const seen: string[] = [];
  const proto = Redis.prototype as unknown as { sendCommand: SendCommand };
  const original = proto.sendCommand;
  proto.sendCommand = function (this: unknown, command, ...rest) {
    seen.push(command.name);
    return original.call(this, command, ...rest);
  };
  try {
    await work();
  } finally {
    proto.sendCommand = original;
  }
  return seen;
}
