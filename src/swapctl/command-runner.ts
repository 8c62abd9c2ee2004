import type { Command } from 'commander';
import { Connection, type ConnectionFlags } from './connection';
import { failureOf, isServiceError, renderFailure } from './error-rendering';
import { EXIT } from './exit-codes';
import { type Io, Output } from './output';
import { UsageError } from './usage-error';

/** What a command's action gets: a connection made from the global flags, and the output. */
export interface CommandEnv {
  connection: Connection;
  output: Output;
  /** The command's own options. */
  options: Record<string, unknown>;
}

/** An action returns its exit code, or nothing for success. */
export type Action = (env: CommandEnv, args: string[]) => Promise<number | void>;

/**
 * Runs command actions: opens the connection, turns every failure into a
 * message and an exit code (never a stack trace), and closes the connection.
 */
export class CommandRunner {
  exitCode: number = EXIT.ok;

  constructor(private readonly io: Io) {}

  /** Makes `action` the action of `command`. */
  bind(command: Command, action: Action): Command {
    return command.action(async (...params: unknown[]) => {
      const self = params.at(-1) as Command;
      const args = params
        .slice(0, -2)
        .flatMap((a): unknown[] => (Array.isArray(a) ? a : [a])) as string[];
      this.exitCode = await this.run(self, args, action);
    });
  }

  private async run(command: Command, args: string[], action: Action): Promise<number> {
    const globals = command.optsWithGlobals<ConnectionFlags & { json?: boolean }>();
    const output = new Output(this.io, globals.json === true);
    let connection: Connection | undefined;
    try {
      connection = new Connection(globals);
      return (await action({ connection, output, options: command.opts() }, args)) ?? EXIT.ok;
    } catch (error) {
      return this.report(error, output);
    } finally {
      connection?.close();
    }
  }

  private report(error: unknown, output: Output): number {
    if (error instanceof UsageError) {
      this.io.err(`swapctl: ${error.message}\n`);
      return EXIT.usage;
    }
    if (isServiceError(error)) {
      const failure = failureOf(error);
      this.io.err(
        output.json
          ? `${JSON.stringify({ ...output.context, error: failure }, null, 2)}\n`
          : `${renderFailure(failure)}\n`,
      );
      return failure.exitCode;
    }
    // Ours to fix; the message is enough to report it, a stack trace would only bury it.
    this.io.err(`swapctl: failed: ${error instanceof Error ? error.message : String(error)}\n`);
    return EXIT.failed;
  }
}
