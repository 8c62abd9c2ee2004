import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';

/** The policy the service ships with the suggested roles (viewer, scheduler, coordinator, auditor…). */
export const DEFAULT_POLICY_FILE = path.resolve(__dirname, '../../src/auth/default-policy.yaml');

/** Files a test writes (policies, key sets) in a temporary folder that `remove()` deletes. */
export class TempFiles {
  private readonly dir = mkdtempSync(path.join(tmpdir(), 'swap-auth-'));

  /** Writes `text` to `name` in the folder and returns its path. */
  write(name: string, text: string): string {
    const file = path.join(this.dir, name);
    writeFileSync(file, text);
    return file;
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A pino logger at `level` that keeps every line it writes, to search them. */
export function capturedLog(level = 'debug'): { log: Logger; text: () => string } {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  return { log: pino({ level }, sink), text: () => chunks.join('') };
}
