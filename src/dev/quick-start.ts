import type { DemoSwap } from './demo-swaps';

/**
 * Tells whoever ran `npm start` without DATABASE_URL how to call the service it
 * just started, over the embedded database and its demo program: `port` is the
 * gRPC port, and `swap` a one-to-one swap the demo schedule allows right now
 * (none when the demo database has run out of them). It writes to stderr
 * unless given `write`.
 */
export function printQuickStart(
  port: number,
  swap: DemoSwap | undefined,
  write: (text: string) => void = (text) => void process.stderr.write(text),
): void {
  const swapctl = port === 50051 ? 'npx swapctl' : `npx swapctl --addr localhost:${port}`;
  const lines = [
    '',
    `swap-service is listening on localhost:${port}, over the embedded PostgreSQL with the demo program.`,
    'Try it with swapctl (`npx swapctl --help`; server reflection is on for grpcurl and buf curl too):',
    `  ${swapctl} health`,
    `  ${swapctl} faculty list`,
  ];
  if (swap) {
    const flags =
      `--source ${swap.sourceFacultyId} --source-week ${swap.sourceWeek} ` +
      `--target ${swap.targetFacultyId} --target-week ${swap.targetWeek}`;
    lines.push(
      `${swap.sourceName} and ${swap.targetName} can trade their FMIT weeks ${swap.sourceWeek} and ${swap.targetWeek}:`,
      `  ${swapctl} schedule show ${swap.sourceFacultyId} --from ${swap.sourceWeek} --weeks ${weeksCovering(swap)}`,
      `  ${swapctl} swaps validate ${flags}`,
      `  ${swapctl} swaps execute ${flags} --reason demo`,
    );
  } else {
    lines.push(
      'No one-to-one FMIT swap is free of conflicts any more; `faculty list` shows who holds which week.',
    );
  }
  write(`${[...lines, ''].join('\n')}\n`);
}

function weeksCovering(swap: DemoSwap): number {
  const days = (Date.parse(swap.targetWeek) - Date.parse(swap.sourceWeek)) / 86_400_000;
  return Math.min(26, days / 7 + 1);
}
