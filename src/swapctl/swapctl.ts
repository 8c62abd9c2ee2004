import { Command, CommanderError, Option } from 'commander';
import { CommandRunner } from './command-runner';
import { registerConflictCommands } from './conflict-commands';
import { EXIT, exitCodeTable } from './exit-codes';
import { registerHealthCommand } from './health-command';
import { registerLoadCommand } from './load-command';
import type { Io } from './output';
import { registerScheduleCommands } from './schedule-commands';
import { registerSwapCommands } from './swap-commands';

/**
 * Runs swapctl with `args` (what follows `swapctl` on the command line),
 * writing to `io`, and resolves to the exit code. It never exits the process
 * itself, so tests run it in-process.
 */
export async function runSwapctl(args: readonly string[], io: Io): Promise<number> {
  const runner = new CommandRunner(io);
  const program = new Command('swapctl')
    .description('Call swap-service: swaps, conflicts, the schedule, health, and load.')
    .option('--addr <host:port>', 'the service', 'localhost:50051')
    .option('--deadline <duration>', 'per-call deadline: 500ms, 10s, 2m', '10s')
    .option('--json', 'print results as JSON (proto3 JSON names)')
    .option('--tls', 'TLS with the system CAs (implied by --ca and --cert)')
    .option('--ca <file>', 'PEM CA bundle to verify the server with')
    .option('--cert <file>', 'PEM client certificate (mTLS); needs --key')
    .option('--key <file>', 'PEM key of --cert')
    .option('--server-name <name>', 'the name to verify the server certificate against')
    .addOption(new Option('--token <jwt>', 'bearer token').env('SWAPCTL_TOKEN'))
    .option('--token-file <file>', 'read the bearer token from a file')
    .option('--on-behalf-of <user>', 'send x-on-behalf-of (needs the delegate permission)')
    .addHelpText(
      'after',
      `\nExit codes: 0 OK, 1 swapctl failed, 2 usage, 3 load check failed; a gRPC status ends with 10 + its code:\n  ${exitCodeTable()
        .filter(([, code]) => code !== 0)
        .map(([name, code]) => `${code} ${name}`)
        .join(', ')}`,
    )
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .showHelpAfterError('(swapctl --help for usage)');
  registerHealthCommand(program, runner);
  registerSwapCommands(program, runner);
  registerConflictCommands(program, runner);
  registerScheduleCommands(program, runner);
  registerLoadCommand(program, runner);
  for (const command of allCommands(program)) command.exitOverride();
  try {
    await program.parseAsync(args, { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      const quiet = ['commander.helpDisplayed', 'commander.help', 'commander.version'];
      return quiet.includes(error.code) ? EXIT.ok : EXIT.usage;
    }
    throw error;
  }
  return runner.exitCode;
}

function allCommands(command: Command): Command[] {
  return [command, ...command.commands.flatMap(allCommands)];
}
