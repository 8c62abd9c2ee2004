import type { TransactionRunner } from '../db/transaction-runner';
import type { CallContext } from '../domain/call-context';
import type { ProgramClock } from '../domain/clock';
import type { RuleViolation } from '../domain/errors';
import { inBusinessSpan } from '../observability/business-span';
import type { ServiceTelemetry } from '../observability/service-telemetry';
import type { SwapSettings } from './execute-swap';
import { readScheduleFacts } from './schedule-facts-reader';
import type { SwapCommand } from './swap-command';
import { judgeSwap, ruleContextAt } from './swap-rules';

/** What ValidateSwap reports: exactly the verdict ExecuteSwap would act on. */
export interface SwapValidation {
  errors: RuleViolation[];
  warnings: RuleViolation[];
}

/** ValidateSwap: runs every rule ExecuteSwap runs and reports every violation, writing nothing. */
export class ValidateSwap {
  constructor(
    private readonly transactions: TransactionRunner,
    private readonly clock: ProgramClock,
    private readonly settings: SwapSettings,
    private readonly telemetry: ServiceTelemetry,
  ) {}

  validate(command: SwapCommand, call: CallContext): Promise<SwapValidation> {
    const attributes = {
      'swap.type': command.swapType,
      'swap.source_faculty_id': command.sourceFacultyId,
      'swap.target_faculty_id': command.targetFacultyId,
    };
    return inBusinessSpan(this.telemetry.tracer, 'swap.validate', attributes, async (span) => {
      const { errors, warnings } = await this.transactions.transactionally(
        call.budget,
        async (em) => {
          const facts = await readScheduleFacts(em, command);
          return judgeSwap(
            command,
            facts,
            ruleContextAt(this.clock, this.settings.shortNoticeDays),
          );
        },
        { readOnly: true },
      );
      span.setAttribute('swap.valid', errors.length === 0);
      return { errors, warnings };
    });
  }
}
