import type { EntityManager } from '@mikro-orm/postgresql';
import { addDays } from '../domain/calendar';
import { isUuid } from '../domain/ids';
import type { ProgramClock } from '../domain/clock';
import type { RuleViolation } from '../domain/errors';
import { readScheduleFacts } from '../swaps/schedule-facts-reader';
import type { SwapCommand } from '../swaps/swap-command';
import { judgeSwap, ruleContextAt } from '../swaps/swap-rules';
import type { ConflictAlert, ResolutionStrategyName } from './conflict-alert.entity';

export type RiskName = 'LOW' | 'MEDIUM' | 'HIGH';
export const RISK_ORDER: Readonly<Record<RiskName, number>> = { LOW: 1, MEDIUM: 2, HIGH: 3 };

export interface SafetyCheck {
  name: string;
  passed: boolean;
  detail: string;
}

/** One way to resolve a conflict, and what applying it would do. */
export interface ResolutionOption {
  optionId: string;
  strategy: ResolutionStrategyName;
  description: string;
  risk: RiskName;
  score: number;
  requiresHuman: boolean;
  checks: SafetyCheck[];
  /** SWAP_ASSIGNMENTS: the ABSORB swap that would be executed. */
  swap?: SwapCommand;
  /** REASSIGN_JUNIOR: the calls that would move to the conflict's faculty member. */
  callIds?: string[];
}

/** Every rule a swap is judged by; an option lists each as a check. ACGME supervision is one of them. */
const SWAP_CHECKS = [
  'NOT_FACULTY',
  'PAST_WEEK',
  'NO_ASSIGNMENTS',
  'FACULTY_ABSENT',
  'DOUBLE_BOOKING',
  'SUPERVISION_RATIO',
  'CLINIC_LIMIT',
  'BACK_TO_BACK_FMIT',
];
/** How many swap candidates an alert lists. */
const MAX_SWAP_OPTIONS = 5;

const CANDIDATES_SQL = `select id from person where kind = 'faculty' and id <> ? order by name, id`;
const CANDIDATE_SQL = `select id from person where id = ?::uuid and kind = 'faculty' and id <> ?`;
const MISPLACED_CALLS_SQL = `
select c.id, c.date, c.call_type as "callType" from call_assignment c
where c.date in (?::date + 4, ?::date + 5) and c.person_id <> ?
order by c.id`;

/**
 * Proposes resolutions for a conflict, each judged by the same rules as a swap,
 * so an option that passes its checks will pass them when applied (unless the
 * schedule changes in between, which the resolver's transaction then reports).
 */
export class ResolutionPlanner {
  constructor(
    private readonly clock: ProgramClock,
    private readonly shortNoticeDays: number,
  ) {}

  async optionsFor(em: EntityManager, alert: ConflictAlert): Promise<ResolutionOption[]> {
    const options: ResolutionOption[] = [];
    if (alert.type === 'CALL_CASCADE') {
      options.push(await this.callReassignment(em, alert));
    } else {
      options.push(...(await this.swapOptions(em, alert)));
    }
    options.push(...humanOptions(alert));
    return options.sort((a, b) => b.score - a.score || a.optionId.localeCompare(b.optionId));
  }

  /**
   * One option by its id, computed alone: what ResolveConflict applies when the
   * caller names it, without judging every other candidate. Undefined when the
   * alert offers no such option.
   */
  async optionById(
    em: EntityManager,
    alert: ConflictAlert,
    optionId: string,
  ): Promise<ResolutionOption | undefined> {
    const [strategy, detail] = optionId.split(':', 2);
    if (
      strategy === 'SWAP_ASSIGNMENTS' &&
      detail &&
      isUuid(detail) &&
      alert.type !== 'CALL_CASCADE'
    ) {
      const [candidate] = await em.execute<{ id: string }[]>(CANDIDATE_SQL, [
        detail,
        alert.facultyId,
      ]);
      return candidate && this.swapOption(em, alert, candidate.id);
    }
    if (optionId === 'REASSIGN_JUNIOR:calls' && alert.type === 'CALL_CASCADE') {
      return this.callReassignment(em, alert);
    }
    return humanOptions(alert).find((o) => o.optionId === optionId);
  }

  private async swapOptions(em: EntityManager, alert: ConflictAlert): Promise<ResolutionOption[]> {
    const candidates = await em.execute<{ id: string }[]>(CANDIDATES_SQL, [alert.facultyId]);
    const options: ResolutionOption[] = [];
    for (const { id } of candidates) options.push(await this.swapOption(em, alert, id));
    options.sort((a, b) => b.score - a.score || a.optionId.localeCompare(b.optionId));
    return options.slice(0, MAX_SWAP_OPTIONS);
  }

  /** `candidate` takes over the alert's week: an ABSORB swap, judged by the swap rules. */
  private async swapOption(
    em: EntityManager,
    alert: ConflictAlert,
    candidate: string,
  ): Promise<ResolutionOption> {
    const swap: SwapCommand = {
      sourceFacultyId: alert.facultyId,
      sourceWeek: alert.weekStart,
      targetFacultyId: candidate,
      targetWeek: null,
      swapType: 'ABSORB',
      reason: `resolves conflict ${alert.id} (${alert.type})`,
    };
    const context = ruleContextAt(this.clock, this.shortNoticeDays);
    const verdict = judgeSwap(swap, await readScheduleFacts(em, swap), context);
    const passed = verdict.errors.length === 0;
    return {
      optionId: `SWAP_ASSIGNMENTS:${candidate}`,
      strategy: 'SWAP_ASSIGNMENTS',
      description: `faculty ${candidate} takes over week ${alert.weekStart} from faculty ${alert.facultyId}`,
      risk: !passed ? 'HIGH' : verdict.warnings.length > 0 ? 'MEDIUM' : 'LOW',
      score: passed ? Math.max(50, 95 - 15 * verdict.warnings.length) : 0,
      requiresHuman: false,
      checks: checksOf(SWAP_CHECKS, verdict.errors, verdict.warnings),
      swap,
    };
  }

  private async callReassignment(
    em: EntityManager,
    alert: ConflictAlert,
  ): Promise<ResolutionOption> {
    const calls = await em.execute<{ id: string; date: string; callType: string }[]>(
      MISPLACED_CALLS_SQL,
      [alert.weekStart, alert.weekStart, alert.facultyId],
    );
    const away = await em.execute<{ n: number }[]>(
      `select count(*)::int as n from absence where person_id = ? and blocking and start_date <= ?::date + 5 and end_date >= ?::date + 4`,
      [alert.facultyId, alert.weekStart, alert.weekStart],
    );
    const available = (away[0]?.n ?? 0) === 0;
    const checks: SafetyCheck[] = [
      {
        name: 'FACULTY_ABSENT',
        passed: available,
        detail: available ? 'no blocking absence on the call days' : 'away on a call day',
      },
      {
        name: 'CALLS_FOUND',
        passed: calls.length > 0,
        detail: `${calls.length} misplaced call(s)`,
      },
    ];
    const passed = checks.every((c) => c.passed);
    return {
      optionId: 'REASSIGN_JUNIOR:calls',
      strategy: 'REASSIGN_JUNIOR',
      description: `move the ${calls.map((c) => `${c.callType} call on ${c.date}`).join(' and ') || 'weekend calls'} of week ${alert.weekStart} to its FMIT faculty member ${alert.facultyId}`,
      risk: passed ? 'LOW' : 'HIGH',
      score: passed ? 90 : 0,
      requiresHuman: false,
      checks,
      callIds: calls.map((c) => c.id),
    };
  }
}

/** Strategies the service proposes but cannot carry out: a scheduler must. */
function humanOptions(alert: ConflictAlert): ResolutionOption[] {
  const week = alert.weekStart;
  return [
    {
      optionId: 'ESCALATE_TO_BACKUP',
      strategy: 'ESCALATE_TO_BACKUP',
      description: `ask the backup faculty on call for week ${week} to cover`,
      risk: 'MEDIUM',
      score: 30,
      requiresHuman: true,
      checks: [],
    },
    {
      optionId: 'SPLIT_COVERAGE',
      strategy: 'SPLIT_COVERAGE',
      description: `split week ${week} (${week} to ${addDays(week, 6)}) between two faculty members`,
      risk: 'HIGH',
      score: 20,
      requiresHuman: true,
      checks: [],
    },
    {
      optionId: 'DEFER_TO_HUMAN',
      strategy: 'DEFER_TO_HUMAN',
      description: 'leave the decision to the program scheduler',
      risk: 'LOW',
      score: 10,
      requiresHuman: true,
      checks: [],
    },
  ];
}

function checksOf(
  names: readonly string[],
  errors: RuleViolation[],
  warnings: RuleViolation[],
): SafetyCheck[] {
  const checks = names.map((name) => {
    const broken = errors.filter((e) => e.reason === name);
    return {
      name,
      passed: broken.length === 0,
      detail: broken.length === 0 ? 'passes' : broken.map((b) => b.message).join('; '),
    };
  });
  for (const warning of warnings)
    checks.push({ name: warning.reason, passed: true, detail: `warning: ${warning.message}` });
  return checks;
}
