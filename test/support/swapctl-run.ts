import { execFile } from 'node:child_process';
import path from 'node:path';
import { runSwapctl } from '../../src/swapctl/swapctl';

/** What one swapctl run printed and how it exited. */
export interface SwapctlRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs swapctl in this process (fast: no tsx start-up), against `address`. */
export async function swapctl(address: string, ...args: string[]): Promise<SwapctlRun> {
  let stdout = '';
  let stderr = '';
  const code = await runSwapctl(['--addr', address, ...args], {
    out: (text) => void (stdout += text),
    err: (text) => void (stderr += text),
  });
  return { code, stdout, stderr };
}

const REPO_ROOT = path.resolve(__dirname, '../..');

/** Runs `npx swapctl …` in a process of its own, exactly as a user at the checkout would. */
export function npxSwapctl(args: readonly string[]): Promise<SwapctlRun> {
  return new Promise((resolve) => {
    execFile(
      'npx',
      ['--offline', 'swapctl', ...args],
      { cwd: REPO_ROOT, env: { PATH: process.env.PATH, HOME: process.env.HOME } },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}
