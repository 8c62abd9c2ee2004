/**
 * `npm run chaos -- --duration 60 --replicas 3`: one chaos run, its figures
 * and a PASS or FAIL per check; `npm run chaos -- --check history.jsonl`
 * checks a saved history again. Exits 1 when any check fails, 2 on bad
 * arguments or a run that could not be carried out.
 */
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { CHECKS, checkHistory } from './checker';
import { runChaos } from './chaos-runner';
import { readHistory } from './history';
import { formatReport } from './report';

const USAGE = `usage: npm run chaos -- [--duration S] [--replicas N] [--clients N] [--faults-per-kind N]
                        [--groups N] [--history FILE] [--skip-build] [--skip-check NAME]...
       npm run chaos -- --check FILE [--skip-check NAME]...
checks: ${CHECKS.join('; ')}`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '60' },
      replicas: { type: 'string', default: '3' },
      clients: { type: 'string', default: '12' },
      'faults-per-kind': { type: 'string' },
      groups: { type: 'string', default: '30' },
      history: { type: 'string' },
      check: { type: 'string' },
      'skip-build': { type: 'boolean', default: false },
      'skip-check': { type: 'string', multiple: true, default: [] },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const skip = new Set(values['skip-check']);
  for (const name of skip) {
    if (!(CHECKS as readonly string[]).includes(name))
      throw new Error(`--skip-check: no check named "${name}"\n${USAGE}`);
  }
  if (values.check) {
    const records = readHistory(values.check);
    const results = checkHistory(records, skip);
    console.log(formatReport(records, results, [...skip]));
    return results.every((r) => r.passed) ? 0 : 1;
  }
  const number = (name: string, value: string | undefined, min: number): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min)
      throw new Error(`--${name}: a whole number of at least ${min}\n${USAGE}`);
    return n;
  };
  const durationS = number('duration', values.duration, 5);
  const outcome = await runChaos({
    durationMs: durationS * 1000,
    replicas: number('replicas', values.replicas, 1),
    clients: number('clients', values.clients, 1),
    // About one fault of each kind every 12 s unless told.
    faultsPerKind: number(
      'faults-per-kind',
      values['faults-per-kind'] ?? String(Math.max(1, Math.round(durationS / 12))),
      1,
    ),
    groups: number('groups', values.groups, 1),
    historyFile: values.history ?? path.join(os.tmpdir(), `swap-chaos-${Date.now()}.jsonl`),
    skipBuild: values['skip-build'],
    skipChecks: skip,
    log: (line) => console.error(line),
  });
  console.log(outcome.report);
  console.log(`history: ${outcome.historyFile}`);
  console.log(outcome.passed ? 'PASS' : 'FAIL');
  return outcome.passed ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
    process.exit(2);
  },
);
