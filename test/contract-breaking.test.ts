import { exec } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

/**
 * The contract check `npm run lint` runs (`lint:contract`: buf breaking
 * against proto/contract-baseline.binpb), run on a scratch copy of proto/:
 * it passes as the contract is, and fails on a change that would break
 * callers.
 */

const root = path.resolve(__dirname, '..');
const scripts = (
  JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as {
    scripts: Record<string, string>;
  }
).scripts;

let scratch: string;
beforeEach(() => {
  scratch = mkdtempSync(path.join(tmpdir(), 'swap-contract-'));
  cpSync(path.join(root, 'proto'), path.join(scratch, 'proto'), { recursive: true });
});
afterEach(() => rmSync(scratch, { recursive: true, force: true }));

/** Runs lint:contract's own command line in the scratch copy; resolves to its exit code and output. */
async function lintContract(): Promise<{ code: number; output: string }> {
  const env = {
    ...process.env,
    PATH: `${path.join(root, 'node_modules/.bin')}:${process.env.PATH}`,
  };
  try {
    const { stdout, stderr } = await promisify(exec)(scripts['lint:contract']!, {
      cwd: scratch,
      env,
    });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const { code, stdout, stderr } = error as { code: number; stdout: string; stderr: string };
    return { code, output: stdout + stderr };
  }
}

/** Rewrites `text` in the scratch copy of `file`; the text must be there. */
function edit(file: string, text: string, replacement: string) {
  const full = path.join(scratch, 'proto', file);
  const source = readFileSync(full, 'utf8');
  expect(source).toContain(text);
  writeFileSync(full, source.replace(text, replacement));
}

it('is part of npm run lint', () => {
  expect(scripts.lint).toContain('npm run lint:contract');
  expect(scripts['lint:contract']).toContain(
    'buf breaking proto --against proto/contract-baseline.binpb',
  );
});

it('passes on the contract as it is', async () => {
  const { code, output } = await lintContract();
  expect(output).toBe('');
  expect(code).toBe(0);
});

describe('fails on a change that breaks callers', () => {
  it('a field number changed', async () => {
    edit('swap/v1/swap.proto', 'string source_faculty_id = 1;', 'string source_faculty_id = 11;');
    const { code, output } = await lintContract();
    expect(code).not.toBe(0);
    expect(output).toMatch(/ExecuteSwapRequest/);
  });

  it('a field renamed (its JSON name changes too)', async () => {
    edit('swap/v1/swap.proto', 'string source_week = 2;', 'string from_week = 2;');
    const { code, output } = await lintContract();
    expect(code).not.toBe(0);
    expect(output).toMatch(/source_week/);
  });
});
