import pino, { type Logger } from 'pino';
import { waitFor } from './sql-fixtures';

/** One pino line, parsed. */
export interface CapturedLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

/** A logger that keeps what it writes, for a test that waits for the service to say something. */
export interface CapturedLog {
  log: Logger;
  lines: CapturedLine[];
  /**
   * Resolves once a line with `msg` (and, if given, for which `where` holds)
   * has been logged since the first `after` lines (0: ever).
   */
  logged(
    msg: string,
    after?: number,
    where?: (line: CapturedLine) => boolean,
  ): Promise<CapturedLine>;
}

export function capturedLog(level: pino.Level = 'info'): CapturedLog {
  const lines: CapturedLine[] = [];
  const log = pino(
    { level },
    { write: (line: string) => void lines.push(JSON.parse(line) as CapturedLine) },
  );
  return {
    log,
    lines,
    logged: async (msg, after = 0, where = () => true) => {
      const find = () => lines.slice(after).find((l) => l.msg === msg && where(l));
      await waitFor(`the log line "${msg}"`, () => find() !== undefined);
      return find()!;
    },
  };
}
