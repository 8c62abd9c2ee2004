import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { swapctl } from './support/swapctl-run';
import { type ServiceAndFixture, useTestService } from './support/test-service';

// The README's swapctl walkthrough is run as written, against a demo service
// seeded on the same day (the test clock's TODAY), and each command's output
// must be what the README shows. Random ids (swaps, request ids: UUID v4) are
// matched by position, and a README id met again in a later command stands for
// the id the service really answered; everything else must be equal.

const README = path.resolve(__dirname, '../README.md');
const BEGIN = '<!-- swapctl-walkthrough:begin -->';
const END = '<!-- swapctl-walkthrough:end -->';
const RANDOM_ID = /[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}/g;

interface Step {
  command: string;
  output: string;
}

/** The `$ npx swapctl …` lines of the marked block, each with the lines that follow it. */
function walkthrough(readme: string): Step[] {
  const block = readme.slice(readme.indexOf(BEGIN), readme.indexOf(END));
  const fenced = /```(?:console)?\n([\s\S]*?)```/.exec(block);
  if (!fenced) throw new Error('no fenced block between the walkthrough markers');
  const steps: Step[] = [];
  for (const line of fenced[1]!.split('\n')) {
    if (line.startsWith('$ ')) steps.push({ command: line.slice(2), output: '' });
    else if (steps.length > 0) steps.at(-1)!.output += `${line}\n`;
  }
  return steps.map((s) => ({ ...s, output: s.output.trimEnd() }));
}

/** Splits a command line as a shell would, for the plain words and "quoted strings" the README uses. */
function words(command: string): string[] {
  return [...command.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]!);
}

describe('the README walkthrough', () => {
  let started: ServiceAndFixture;
  useTestService((s) => (started = s), { SEED_DEMO: 'true' });

  it('runs as written and prints what the README shows', async () => {
    const readme = readFileSync(README, 'utf8');
    const steps = walkthrough(readme);
    expect(steps.map((s) => words(s.command).slice(0, 3).join(' '))).toEqual([
      'npx swapctl faculty',
      'npx swapctl schedule',
      'npx swapctl swaps',
      'npx swapctl swaps',
      'npx swapctl swaps',
      'npx swapctl swaps',
    ]);
    const realIds = new Map<string, string>();
    const printed: string[] = [];
    for (const step of steps) {
      const [npx, bin, ...args] = words(
        step.command.replace(RANDOM_ID, (id) => realIds.get(id) ?? id),
      );
      expect(`${npx} ${bin}`).toBe('npx swapctl');
      const run = await swapctl(started.ts.address, ...args);
      expect.soft(run.code, `${step.command}\n${run.stderr}`).toBe(0);
      const actual = `${run.stderr}${run.stdout}`.trimEnd();
      printed.push(`$ ${step.command}\n${actual}`);
      const shown = [...step.output.matchAll(RANDOM_ID)].map((m) => m[0]);
      const answered = [...actual.matchAll(RANDOM_ID)].map((m) => m[0]);
      shown.forEach((id, i) => answered[i] && realIds.set(id, answered[i]));
      expect
        .soft(actual.replace(RANDOM_ID, '<id>'), step.command)
        .toBe(step.output.replace(RANDOM_ID, '<id>'));
    }
    // `SWAPCTL_README_OUTPUT=file` writes what really ran, to paste into the README.
    if (process.env.SWAPCTL_README_OUTPUT)
      writeFileSync(process.env.SWAPCTL_README_OUTPUT, `${printed.join('\n')}\n`);
  });
});
