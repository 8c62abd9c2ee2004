import Table from 'cli-table3';

/** Where a run writes: standard output for results, standard error for notes and errors. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
}

/** The process's own streams. */
export const processIo: Io = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

/** Renders results as tables for people, or as JSON with `--json`. */
export class Output {
  constructor(
    readonly io: Io,
    readonly json: boolean,
  ) {}

  /** The result: `value` as JSON with --json, otherwise what `human` renders. */
  result(value: unknown, human: () => string): void {
    this.io.out(`${this.json ? JSON.stringify(value, null, 2) : human()}\n`);
  }

  /** What a failure's JSON should carry beside the error (the request_id sent, say). */
  readonly context: Record<string, string> = {};

  /**
   * The request_id of a mutating call, before it is sent: a note for a person,
   * or (with --json) a field of the answer and of the error, so either can retry.
   */
  requestId(id: string, note: string): void {
    this.context.requestId = id;
    if (!this.json) this.note(note);
  }

  /** A note for the person at the terminal (request ids, progress); never part of the result. */
  note(text: string): void {
    this.io.err(`${text}\n`);
  }
}

/** A plain table (no colours, so it reads the same in a terminal, a file and a test). */
export function table(head: string[], rows: Array<Array<string | number>>): string {
  const t = new Table({ head, style: { head: [], border: [] } });
  t.push(...rows.map((row) => row.map(String)));
  return t.toString();
}

/** Key/value pairs as a two-column table. */
export function details(pairs: Array<[string, string | number | boolean]>): string {
  const t = new Table({ style: { head: [], border: [] } });
  for (const [key, value] of pairs) t.push({ [key]: String(value) });
  return t.toString();
}

/** An enum name without its prefix: SWAP_STATUS_EXECUTED → EXECUTED. */
export function shortEnum(name: string, prefix: string): string {
  return name.startsWith(prefix) ? name.slice(prefix.length) : name;
}

/** A timestamp as ISO text, or empty. */
export function time(value: Date | undefined): string {
  return value ? value.toISOString() : '';
}
