import { type Command, Option } from 'commander';
import {
  AcknowledgeConflictResponse,
  AutoResolveResponse,
  autoResolveOutcomeToJSON,
  type Conflict,
  ConflictSeverity,
  conflictSeverityToJSON,
  ConflictStatus,
  conflictStatusToJSON,
  ConflictType,
  conflictTypeToJSON,
  DetectConflictsResponse,
  GetConflictResponse,
  GetResolutionOptionsResponse,
  IgnoreConflictResponse,
  ListConflictsRequest,
  ListConflictsResponse,
  ResolutionStrategy,
  resolutionStrategyToJSON,
  ResolveConflictResponse,
  RiskLevel,
  riskLevelToJSON,
} from '../generated/swap/v1/conflict';
import type { CommandRunner } from './command-runner';
import { call } from './connection';
import { enumFlag, integerFlag, optionalWeekFlag, uuidFlag, weekFlag } from './flags';
import { details, shortEnum, table, time } from './output';
import { announceRequestId } from './swap-commands';
import { UsageError } from './usage-error';

const STATUSES = ['new', 'acknowledged', 'resolved', 'ignored'];
const TYPES = [
  'leave-fmit-overlap',
  'back-to-back',
  'excessive-alternating',
  'call-cascade',
  'external-commitment',
];
const SEVERITIES = ['critical', 'warning', 'info'];
const STRATEGIES = [
  'swap-assignments',
  'reassign-junior',
  'escalate-to-backup',
  'split-coverage',
  'defer-to-human',
];

/** `swapctl conflicts detect|list|get|ack|ignore|options|resolve|auto-resolve`. */
export function registerConflictCommands(program: Command, runner: CommandRunner): void {
  const conflicts = program
    .command('conflicts')
    .description('detect, triage and resolve scheduling conflicts');

  runner.bind(
    conflicts
      .command('detect')
      .description('scan weeks and raise the alerts not already open')
      .requiredOption('--from <monday>', 'first week')
      .requiredOption('--to <monday>', 'last week (at most 60 weeks after --from)'),
    async ({ connection, output, options: o }) => {
      const response = await call(
        connection,
        connection.conflicts.detectConflicts.bind(connection.conflicts),
        {
          weekFrom: weekFlag('--from', o.from as string),
          weekTo: weekFlag('--to', o.to as string),
        },
      );
      output.result(DetectConflictsResponse.toJSON(response), () =>
        [conflictTable(response.created), `${response.created.length} new conflict(s)`].join('\n'),
      );
    },
  );

  runner.bind(
    conflicts
      .command('list')
      .description('conflicts, ordered by week')
      .option('--faculty <id>', 'faculty member')
      .addOption(new Option('--status <status>').choices(STATUSES))
      .addOption(new Option('--type <type>').choices(TYPES))
      .addOption(new Option('--severity <severity>').choices(SEVERITIES))
      .option('--from <monday>', 'first week')
      .option('--to <monday>', 'last week')
      .option('--page-size <n>', 'up to 500', '50')
      .option('--page-token <token>', 'from a previous page'),
    async ({ connection, output, options: o }) => {
      const request = ListConflictsRequest.fromPartial({
        facultyId: o.faculty === undefined ? '' : uuidFlag('--faculty', o.faculty as string),
        status:
          o.status === undefined
            ? 0
            : enumFlag('--status', o.status as string, ConflictStatus, 'CONFLICT_STATUS_'),
        type:
          o.type === undefined
            ? 0
            : enumFlag('--type', o.type as string, ConflictType, 'CONFLICT_TYPE_'),
        severity:
          o.severity === undefined
            ? 0
            : enumFlag('--severity', o.severity as string, ConflictSeverity, 'CONFLICT_SEVERITY_'),
        weekFrom: optionalWeekFlag('--from', o.from as string | undefined),
        weekTo: optionalWeekFlag('--to', o.to as string | undefined),
        pageSize: integerFlag('--page-size', o.pageSize as string, 1, 500),
        pageToken: (o.pageToken as string | undefined) ?? '',
      });
      const response = await call(
        connection,
        connection.conflicts.listConflicts.bind(connection.conflicts),
        request,
      );
      output.result(ListConflictsResponse.toJSON(response), () =>
        [
          conflictTable(response.conflicts),
          `${response.conflicts.length} conflict(s)` +
            (response.nextPageToken ? `; next page: --page-token ${response.nextPageToken}` : ''),
        ].join('\n'),
      );
    },
  );

  runner.bind(
    conflicts.command('get').description('one conflict').argument('<conflict-id>'),
    async ({ connection, output }, [id]) => {
      const response = await call(
        connection,
        connection.conflicts.getConflict.bind(connection.conflicts),
        {
          conflictId: uuidFlag('<conflict-id>', id!),
        },
      );
      output.result(GetConflictResponse.toJSON(response), () => renderConflict(response.conflict!));
    },
  );

  runner.bind(
    conflicts
      .command('ack')
      .description('NEW → ACKNOWLEDGED')
      .argument('<conflict-id>')
      .option('--notes <text>', 'notes', '')
      .option('--request-id <uuid>', 'retry an earlier call with its request_id'),
    async ({ connection, output, options: o }, [id]) => {
      const conflictId = uuidFlag('<conflict-id>', id!);
      const { requestId } = announceRequestId(output, o.requestId as string | undefined);
      const response = await call(
        connection,
        connection.conflicts.acknowledgeConflict.bind(connection.conflicts),
        {
          conflictId,
          notes: o.notes as string,
          requestId,
        },
      );
      output.result(
        { requestId, ...(AcknowledgeConflictResponse.toJSON(response) as object) },
        () => renderConflict(response.conflict!),
      );
    },
  );

  runner.bind(
    conflicts
      .command('ignore')
      .description('→ IGNORED, with a reason')
      .argument('<conflict-id>')
      .requiredOption('--reason <text>', 'why')
      .option('--request-id <uuid>', 'retry an earlier call with its request_id'),
    async ({ connection, output, options: o }, [id]) => {
      const conflictId = uuidFlag('<conflict-id>', id!);
      const { requestId } = announceRequestId(output, o.requestId as string | undefined);
      const response = await call(
        connection,
        connection.conflicts.ignoreConflict.bind(connection.conflicts),
        {
          conflictId,
          reason: o.reason as string,
          requestId,
        },
      );
      output.result({ requestId, ...(IgnoreConflictResponse.toJSON(response) as object) }, () =>
        renderConflict(response.conflict!),
      );
    },
  );

  runner.bind(
    conflicts
      .command('options')
      .description('candidate resolutions and their safety checks')
      .argument('<conflict-id>'),
    async ({ connection, output }, [id]) => {
      const response = await call(
        connection,
        connection.conflicts.getResolutionOptions.bind(connection.conflicts),
        { conflictId: uuidFlag('<conflict-id>', id!) },
      );
      output.result(GetResolutionOptionsResponse.toJSON(response), () =>
        [
          table(
            ['option', 'strategy', 'risk', 'score', 'human', 'failed checks', 'description'],
            response.options.map((option) => [
              option.optionId,
              shortEnum(resolutionStrategyToJSON(option.strategy), 'RESOLUTION_STRATEGY_'),
              shortEnum(riskLevelToJSON(option.risk), 'RISK_LEVEL_'),
              option.score,
              option.requiresHuman ? 'yes' : 'no',
              option.checks
                .filter((c) => !c.passed)
                .map((c) => c.name)
                .join(', ') || '-',
              option.description,
            ]),
          ),
          `${response.options.length} option(s)`,
        ].join('\n'),
      );
    },
  );

  runner.bind(
    conflicts
      .command('resolve')
      .description('apply one option (or the best option of a strategy)')
      .argument('<conflict-id>')
      .option('--option <id>', 'an option id from `conflicts options`')
      .addOption(new Option('--strategy <strategy>').choices(STRATEGIES))
      .option('--notes <text>', 'notes', '')
      .option('--request-id <uuid>', 'retry an earlier call with its request_id'),
    async ({ connection, output, options: o }, [id]) => {
      const conflictId = uuidFlag('<conflict-id>', id!);
      if ((o.option === undefined) === (o.strategy === undefined))
        throw new UsageError('give exactly one of --option and --strategy');
      const { requestId } = announceRequestId(output, o.requestId as string | undefined);
      const response = await call(
        connection,
        connection.conflicts.resolveConflict.bind(connection.conflicts),
        {
          conflictId,
          optionId: (o.option as string | undefined) ?? '',
          strategy:
            o.strategy === undefined
              ? 0
              : enumFlag(
                  '--strategy',
                  o.strategy as string,
                  ResolutionStrategy,
                  'RESOLUTION_STRATEGY_',
                ),
          notes: o.notes as string,
          requestId,
        },
      );
      output.result({ requestId, ...(ResolveConflictResponse.toJSON(response) as object) }, () =>
        [
          renderConflict(response.conflict!),
          response.swap ? `resolving swap: ${response.swap.id}` : '',
        ]
          .filter(Boolean)
          .join('\n'),
      );
    },
  );

  runner.bind(
    conflicts
      .command('auto-resolve')
      .description('apply the best safe option within --max-risk to each conflict')
      .argument('<conflict-ids...>')
      .addOption(new Option('--max-risk <risk>').choices(['low', 'medium', 'high']).default('low'))
      .option('--request-id <uuid>', 'retry an earlier call with its request_id'),
    async ({ connection, output, options: o }, ids) => {
      const conflictIds = ids.map((id) => uuidFlag('<conflict-ids>', id));
      const { requestId } = announceRequestId(output, o.requestId as string | undefined);
      const response = await call(
        connection,
        connection.conflicts.autoResolve.bind(connection.conflicts),
        {
          conflictIds,
          maxRisk: enumFlag('--max-risk', o.maxRisk as string, RiskLevel, 'RISK_LEVEL_'),
          requestId,
        },
      );
      output.result({ requestId, ...(AutoResolveResponse.toJSON(response) as object) }, () =>
        table(
          ['conflict', 'outcome', 'option', 'swap', 'message'],
          response.results.map((r) => [
            r.conflictId,
            shortEnum(autoResolveOutcomeToJSON(r.outcome), 'AUTO_RESOLVE_OUTCOME_'),
            r.optionId,
            r.swapId,
            r.message,
          ]),
        ),
      );
    },
  );
}

function conflictTable(conflicts: Conflict[]): string {
  return table(
    ['id', 'week', 'type', 'severity', 'status', 'faculty', 'description'],
    conflicts.map((c) => [
      c.id,
      c.week,
      shortEnum(conflictTypeToJSON(c.type), 'CONFLICT_TYPE_'),
      shortEnum(conflictSeverityToJSON(c.severity), 'CONFLICT_SEVERITY_'),
      shortEnum(conflictStatusToJSON(c.status), 'CONFLICT_STATUS_'),
      c.facultyId,
      c.description,
    ]),
  );
}

function renderConflict(c: Conflict): string {
  return details([
    ['id', c.id],
    ['week', c.week],
    ['type', shortEnum(conflictTypeToJSON(c.type), 'CONFLICT_TYPE_')],
    ['severity', shortEnum(conflictSeverityToJSON(c.severity), 'CONFLICT_SEVERITY_')],
    ['status', shortEnum(conflictStatusToJSON(c.status), 'CONFLICT_STATUS_')],
    ['faculty', c.facultyId],
    ['description', c.description],
    ['created', time(c.createdAt)],
    ...(c.acknowledgedBy
      ? ([['acknowledged', `${time(c.acknowledgedAt)} by ${c.acknowledgedBy}`]] as Array<
          [string, string]
        >)
      : []),
    ...(c.resolvedBy
      ? ([['resolved', `${time(c.resolvedAt)} by ${c.resolvedBy}`]] as Array<[string, string]>)
      : []),
    ...(c.resolution
      ? ([
          ['resolution', shortEnum(resolutionStrategyToJSON(c.resolution), 'RESOLUTION_STRATEGY_')],
        ] as Array<[string, string]>)
      : []),
    ...(c.notes ? ([['notes', c.notes]] as Array<[string, string]>) : []),
  ]);
}
