import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { CheckResult } from './bench-schedule-check';
import { COPIED_STATEMENTS } from './raw-sql-statements';

const ROOT = path.resolve(__dirname, '..');

/**
 * Whether every statement the raw path copied from src/ is still the one the
 * service sends: the source constant is read from its file, its `?`
 * placeholders numbered as pg's, and both compared with whitespace collapsed.
 * A mismatch means the baseline no longer does the service's work.
 */
export async function checkCopiedStatements(): Promise<CheckResult> {
  const stale: string[] = [];
  for (const statement of COPIED_STATEMENTS) {
    const source = await readFile(path.join(ROOT, statement.file), 'utf8');
    const match = new RegExp(`const ${statement.constant} = \`([^\`]*)\`;`).exec(source);
    if (!match) {
      stale.push(`${statement.constant} not found in ${statement.file}`);
      continue;
    }
    let n = 0;
    const numbered = match[1]!.replace(/\?/g, () => `$${++n}`);
    if (collapse(numbered) !== collapse(statement.text))
      stale.push(`${statement.constant} of ${statement.file}`);
  }
  return {
    name: 'raw-SQL copies match src/',
    ok: stale.length === 0,
    detail:
      stale.length === 0
        ? `${COPIED_STATEMENTS.length} statements identical to their source (${COPIED_STATEMENTS.map((s) => s.constant).join(', ')})`
        : `changed in src/, update bench/raw-sql-statements.ts: ${stale.join('; ')}`,
  };
}

function collapse(sql: string): string {
  return sql.replace(/\s+/g, ' ').trim();
}
