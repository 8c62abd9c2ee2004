import type { Command } from 'commander';
import type { CommandRunner } from './command-runner';
import { call } from './connection';
import { EXIT } from './exit-codes';
import { table } from './output';

/** The services the server reports on; '' is the server as a whole. */
const SERVICES = [
  '',
  'swap.v1.SwapService',
  'swap.v1.ConflictService',
  'swap.v1.AuditService',
  'swap.v1.ScheduleService',
];

/** `swapctl health`: grpc.health.v1 Check for the server and each service. */
export function registerHealthCommand(program: Command, runner: CommandRunner): void {
  runner.bind(
    program
      .command('health')
      .description(
        'grpc.health.v1 status of the server and each service; exit 1 unless all SERVING',
      )
      .option('--service <name>', 'only this service'),
    async ({ connection, output, options: o }) => {
      const names = o.service === undefined ? SERVICES : [o.service as string];
      const statuses = await Promise.all(
        names.map(async (service) => {
          const response = await call(connection, connection.health.check.bind(connection.health), {
            service,
          });
          return { service, status: response.status };
        }),
      );
      output.result({ services: statuses }, () =>
        table(
          ['service', 'status'],
          statuses.map((s) => [s.service || '(server)', s.status]),
        ),
      );
      return statuses.every((s) => s.status === 'SERVING') ? EXIT.ok : EXIT.failed;
    },
  );
}
