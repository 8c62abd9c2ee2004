import { type Command, Option } from 'commander';
import {
  ExecuteSwapRequest,
  ExecuteSwapResponse,
  GetSwapResponse,
  ListSwapsRequest,
  ListSwapsResponse,
  RollbackSwapResponse,
  type Swap,
  SwapStatus,
  swapStatusToJSON,
  SwapType,
  swapTypeToJSON,
  ValidateSwapResponse,
  type Violation,
} from '../generated/swap/v1/swap';
import type { CommandRunner } from './command-runner';
import { call } from './connection';
import { exitCodeOfStatus } from './exit-codes';
import { enumFlag, integerFlag, optionalWeekFlag, requestIdOf, uuidFlag, weekFlag } from './flags';
import { details, type Output, shortEnum, table, time } from './output';
import { status } from '@grpc/grpc-js';

/** `swapctl swaps list|get|validate|execute|rollback`. */
export function registerSwapCommands(program: Command, runner: CommandRunner): void {
  const swaps = program.command('swaps').description('execute, validate, roll back and read swaps');

  runner.bind(
    swaps
      .command('list')
      .description('swaps, newest first')
      .option('--faculty <id>', 'source or target faculty')
      .option('--from <monday>', 'first week')
      .option('--to <monday>', 'last week')
      .addOption(
        new Option('--status <status>', 'swap status').choices(['executed', 'rolled-back']),
      )
      .option('--page-size <n>', 'up to 500', '50')
      .option('--page-token <token>', 'from a previous page'),
    async ({ connection, output, options: o }) => {
      const request = ListSwapsRequest.fromPartial({
        facultyId: o.faculty === undefined ? '' : uuidFlag('--faculty', o.faculty as string),
        weekFrom: optionalWeekFlag('--from', o.from as string | undefined),
        weekTo: optionalWeekFlag('--to', o.to as string | undefined),
        status:
          o.status === undefined
            ? SwapStatus.SWAP_STATUS_UNSPECIFIED
            : enumFlag('--status', o.status as string, SwapStatus, 'SWAP_STATUS_'),
        pageSize: integerFlag('--page-size', o.pageSize as string, 1, 500),
        pageToken: (o.pageToken as string | undefined) ?? '',
      });
      const response = await call(
        connection,
        connection.swaps.listSwaps.bind(connection.swaps),
        request,
      );
      output.result(ListSwapsResponse.toJSON(response), () =>
        [
          table(
            [
              'id',
              'type',
              'status',
              'source',
              'source week',
              'target',
              'target week',
              'requested at',
            ],
            response.swaps.map((s) => [
              s.id,
              shortEnum(swapTypeToJSON(s.swapType), 'SWAP_TYPE_'),
              shortEnum(swapStatusToJSON(s.status), 'SWAP_STATUS_'),
              s.sourceFacultyId,
              s.sourceWeek,
              s.targetFacultyId,
              s.targetWeek,
              time(s.requestedAt),
            ]),
          ),
          `${response.swaps.length} swap(s)` +
            (response.nextPageToken ? `; next page: --page-token ${response.nextPageToken}` : ''),
        ].join('\n'),
      );
    },
  );

  runner.bind(
    swaps.command('get').description('one swap, with every row it moved').argument('<swap-id>'),
    async ({ connection, output }, [swapId]) => {
      const response = await call(connection, connection.swaps.getSwap.bind(connection.swaps), {
        swapId: uuidFlag('<swap-id>', swapId!),
      });
      output.result(GetSwapResponse.toJSON(response), () => renderSwap(response.swap!, true));
    },
  );

  const swapFlags = (command: Command) =>
    command
      .requiredOption('--source <id>', 'the faculty member who gives a week')
      .requiredOption('--source-week <monday>', 'the week given')
      .requiredOption('--target <id>', 'the faculty member who takes it')
      .option('--target-week <monday>', 'the week the target gives back (one-to-one)')
      .addOption(
        new Option(
          '--type <type>',
          'one-to-one, or absorb (default: absorb without --target-week)',
        ).choices(['one-to-one', 'absorb']),
      )
      .option('--reason <text>', 'why', '');
  const swapRequest = (o: Record<string, unknown>) => {
    const targetWeek = optionalWeekFlag('--target-week', o.targetWeek as string | undefined);
    const type = (o.type as string | undefined) ?? (targetWeek ? 'one-to-one' : 'absorb');
    return {
      sourceFacultyId: uuidFlag('--source', o.source as string),
      sourceWeek: weekFlag('--source-week', o.sourceWeek as string),
      targetFacultyId: uuidFlag('--target', o.target as string),
      targetWeek,
      swapType: enumFlag('--type', type, SwapType, 'SWAP_TYPE_'),
      reason: o.reason as string,
    };
  };

  runner.bind(
    swapFlags(swaps.command('validate').description('run every swap rule; change nothing')),
    async ({ connection, output, options }) => {
      const response = await call(
        connection,
        connection.swaps.validateSwap.bind(connection.swaps),
        { ...swapRequest(options), requestId: '' },
      );
      output.result(ValidateSwapResponse.toJSON(response), () =>
        [
          response.valid
            ? 'valid: the swap breaks no rule'
            : 'INVALID: the swap breaks these rules',
          violations('errors', response.errors),
          violations('warnings', response.warnings),
        ]
          .filter(Boolean)
          .join('\n'),
      );
      // An invalid swap exits as ExecuteSwap would refuse it.
      return response.valid ? 0 : exitCodeOfStatus(status.FAILED_PRECONDITION);
    },
  );

  runner.bind(
    swapFlags(
      swaps.command('execute').description('execute a swap (validated again first)'),
    ).option('--request-id <uuid>', 'retry an earlier call with its request_id'),
    async ({ connection, output, options }) => {
      const { requestId } = announceRequestId(output, options.requestId as string | undefined);
      const request = ExecuteSwapRequest.fromPartial({ ...swapRequest(options), requestId });
      const response = await call(
        connection,
        connection.swaps.executeSwap.bind(connection.swaps),
        request,
      );
      output.result({ requestId, ...(ExecuteSwapResponse.toJSON(response) as object) }, () =>
        renderSwap(response.swap!, false),
      );
    },
  );

  runner.bind(
    swaps
      .command('rollback')
      .description('move back exactly what a swap moved (within the rollback window)')
      .argument('<swap-id>')
      .requiredOption('--reason <text>', 'why')
      .option('--request-id <uuid>', 'retry an earlier call with its request_id'),
    async ({ connection, output, options }, [swapId]) => {
      const { requestId } = announceRequestId(output, options.requestId as string | undefined);
      const response = await call(
        connection,
        connection.swaps.rollbackSwap.bind(connection.swaps),
        {
          swapId: uuidFlag('<swap-id>', swapId!),
          reason: options.reason as string,
          requestId,
        },
      );
      output.result({ requestId, ...(RollbackSwapResponse.toJSON(response) as object) }, () =>
        renderSwap(response.swap!, false),
      );
    },
  );
}

/** Prints the request_id before the call, so a call that times out can be retried with it. */
export function announceRequestId(output: Output, given: string | undefined) {
  const id = requestIdOf(given);
  output.requestId(
    id.requestId,
    `request_id ${id.requestId}${id.fresh ? ' (retry with --request-id to repeat this call)' : ' (retry)'}`,
  );
  return id;
}

function violations(title: string, list: Violation[]): string {
  if (list.length === 0) return '';
  return `${title}:\n${table(
    ['reason', 'subject', 'message'],
    list.map((v) => [v.reason, v.subject, v.message]),
  )}`;
}

function renderSwap(swap: Swap, withRows: boolean): string {
  const parts = [
    details([
      ['id', swap.id],
      ['type', shortEnum(swapTypeToJSON(swap.swapType), 'SWAP_TYPE_')],
      ['status', shortEnum(swapStatusToJSON(swap.status), 'SWAP_STATUS_')],
      ['source', `${swap.sourceFacultyId} gives ${swap.sourceWeek}`],
      ['target', `${swap.targetFacultyId}${swap.targetWeek ? ` gives ${swap.targetWeek}` : ''}`],
      ['reason', swap.reason],
      ['executed', `${time(swap.executedAt)} by ${swap.executedBy}`],
      ...(swap.rolledBackAt
        ? ([
            ['rolled back', `${time(swap.rolledBackAt)} by ${swap.rolledBackBy}`],
            ['rollback reason', swap.rollbackReason],
          ] as Array<[string, string]>)
        : []),
      ['moved', `${swap.movedAssignments.length} assignments, ${swap.movedCalls.length} calls`],
    ]),
    violations('warnings', swap.warnings),
  ];
  if (withRows) {
    parts.push(
      table(
        ['date', 'half', 'rotation', 'from', 'to'],
        swap.movedAssignments.map((a) => [
          a.blockDate,
          a.blockHalf,
          a.rotation,
          a.fromPersonId,
          a.toPersonId,
        ]),
      ),
    );
    if (swap.movedCalls.length > 0) {
      parts.push(
        table(
          ['call date', 'type', 'from', 'to'],
          swap.movedCalls.map((c) => [c.date, c.callType, c.fromPersonId, c.toPersonId]),
        ),
      );
    }
  }
  return parts.filter(Boolean).join('\n');
}
