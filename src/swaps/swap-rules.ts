import { addDays, daysBetween, mondayOf } from '../domain/calendar';
import type { ProgramClock } from '../domain/clock';
import type { RuleViolation } from '../domain/errors';
import { CLINIC_ROTATION, FMIT_ROTATION } from '../schedule/assignment.entity';
import type { FacultyRole } from '../schedule/person.entity';
import type { AssignmentFact, ScheduleFacts } from './schedule-facts';
import { type SwapCommand, type WeekTransfer, transfersOf } from './swap-command';

/** Half-days of clinic a faculty member may hold in one week, by role. */
export const WEEKLY_CLINIC_LIMIT: Readonly<Record<FacultyRole, number>> = {
  pd: 0,
  dept_chief: 1,
  apd: 2,
  oic: 2,
  core: 4,
  sports_med: 0,
  adjunct: 0,
};

/** Assignment roles that count as supervising residents. */
const SUPERVISING_ROLES: ReadonlySet<string> = new Set(['primary', 'supervising']);

export interface RuleContext {
  /** Today's date in the program's calendar. */
  today: string;
  /** A week starting sooner than this gets a SHORT_NOTICE warning. */
  shortNoticeDays: number;
}

/** The rules' view of today (the program's civil date), read from `clock` once per judgement. */
export function ruleContextAt(clock: ProgramClock, shortNoticeDays: number): RuleContext {
  return { today: clock.today(), shortNoticeDays };
}

export interface SwapVerdict {
  errors: RuleViolation[];
  warnings: RuleViolation[];
  /** The assignments that move, and to whom; empty when the people are unknown. */
  moves: PlannedMove[];
}

export interface PlannedMove {
  assignment: AssignmentFact;
  to: string;
}

/**
 * Judges a swap against the schedule, without side effects. Every rule is
 * evaluated and every violation reported, in a fixed order, so the first
 * error's code is stable for a given schedule.
 */
export function judgeSwap(
  command: SwapCommand,
  facts: ScheduleFacts,
  ctx: RuleContext,
): SwapVerdict {
  const errors: RuleViolation[] = [];
  const warnings: RuleViolation[] = [];
  const transfers = transfersOf(command);

  for (const id of [command.sourceFacultyId, command.targetFacultyId]) {
    const person = facts.people.get(id);
    if (!person) {
      errors.push({
        reason: 'FACULTY_NOT_FOUND',
        message: `no person with id ${id}`,
        subject: `person/${id}`,
      });
    } else if (person.kind !== 'faculty') {
      errors.push({
        reason: 'NOT_FACULTY',
        message: `person ${id} is a ${person.kind}, not faculty`,
        subject: `person/${id}`,
      });
    }
  }
  // The remaining rules are about faculty schedules; they mean nothing for unknown people.
  if (errors.length > 0) return { errors, warnings, moves: [] };

  const moves = plannedMoves(transfers, facts.facultyAssignments);
  const after = applyMoves(facts.facultyAssignments, moves);
  const rostersAfter = applyMoves(facts.affectedBlockRosters, moves);

  for (const week of new Set(transfers.map((t) => t.week))) {
    if (week < ctx.today) {
      errors.push({
        reason: 'PAST_WEEK',
        message: `week ${week} has already begun`,
        subject: `week/${week}`,
      });
    } else if (daysBetween(ctx.today, week) < ctx.shortNoticeDays) {
      warnings.push({
        reason: 'SHORT_NOTICE',
        message: `week ${week} starts in ${daysBetween(ctx.today, week)} days`,
        subject: `week/${week}`,
      });
    }
  }
  for (const t of transfers) {
    if (
      !moves.some(
        (m) => m.assignment.personId === t.giver && inWeek(m.assignment.blockDate, t.week),
      )
    ) {
      errors.push({
        reason: 'NO_ASSIGNMENTS',
        message: `faculty ${t.giver} holds no assignment in week ${t.week}`,
        subject: facultyWeek(t.giver, t.week),
      });
    }
  }
  for (const t of transfers) {
    const absence = facts.blockingAbsences.find(
      (a) => a.personId === t.receiver && a.startDate <= addDays(t.week, 6) && a.endDate >= t.week,
    );
    if (absence) {
      errors.push({
        reason: 'FACULTY_ABSENT',
        message: `faculty ${t.receiver} is away (${absence.type}, ${absence.startDate} to ${absence.endDate}) in week ${t.week}`,
        subject: facultyWeek(t.receiver, t.week),
      });
    }
  }
  for (const t of transfers) errors.push(...doubleBookings(t, after));
  errors.push(...supervisionShortfalls(rostersAfter, moves));
  for (const t of transfers) {
    const role = facts.people.get(t.receiver)?.facultyRole;
    if (role) errors.push(...clinicOverLimit(t, role, facts.facultyAssignments, after));
  }
  for (const t of transfers) errors.push(...backToBackFmit(t, after));
  return { errors, warnings, moves };
}

function plannedMoves(
  transfers: WeekTransfer[],
  assignments: readonly AssignmentFact[],
): PlannedMove[] {
  const moves: PlannedMove[] = [];
  for (const t of transfers) {
    for (const a of assignments) {
      if (a.personId === t.giver && inWeek(a.blockDate, t.week))
        moves.push({ assignment: a, to: t.receiver });
    }
  }
  return moves;
}

function applyMoves(
  assignments: readonly AssignmentFact[],
  moves: PlannedMove[],
): AssignmentFact[] {
  const target = new Map(moves.map((m) => [m.assignment.id, m.to]));
  return assignments.map((a) => {
    const to = target.get(a.id);
    return to === undefined ? a : { ...a, personId: to };
  });
}

function doubleBookings(t: WeekTransfer, after: AssignmentFact[]): RuleViolation[] {
  const seen = new Map<string, number>();
  for (const a of after) {
    if (a.personId === t.receiver && inWeek(a.blockDate, t.week)) {
      seen.set(a.blockId, (seen.get(a.blockId) ?? 0) + 1);
    }
  }
  const violations: RuleViolation[] = [];
  for (const a of after) {
    if (a.personId === t.receiver && (seen.get(a.blockId) ?? 0) > 1) {
      seen.delete(a.blockId);
      violations.push({
        reason: 'DOUBLE_BOOKING',
        message: `faculty ${t.receiver} is already assigned to block ${a.blockDate} ${a.blockHalf}`,
        subject: `block/${a.blockDate}/${a.blockHalf}`,
      });
    }
  }
  return violations;
}

/** ACGME-style ratios: one faculty per two PGY-1 residents, or per four PGY-2/3 residents. */
export function requiredSupervisors(pgy1: number, seniors: number): number {
  return Math.ceil((2 * pgy1 + seniors) / 4);
}

function supervisionShortfalls(rosters: AssignmentFact[], moves: PlannedMove[]): RuleViolation[] {
  const affected = new Set(moves.map((m) => m.assignment.blockId));
  const byBlock = new Map<string, AssignmentFact[]>();
  for (const a of rosters) {
    if (!affected.has(a.blockId)) continue;
    const list = byBlock.get(a.blockId) ?? [];
    list.push(a);
    byBlock.set(a.blockId, list);
  }
  const violations: RuleViolation[] = [];
  for (const roster of byBlock.values()) {
    const first = roster[0]!;
    const supervisors = new Set(
      roster
        .filter((a) => a.personKind === 'faculty' && SUPERVISING_ROLES.has(a.role))
        .map((a) => a.personId),
    ).size;
    const pgy1 = roster.filter((a) => a.personKind === 'resident' && a.pgyLevel === 1).length;
    const seniors = roster.filter(
      (a) => a.personKind === 'resident' && (a.pgyLevel ?? 0) >= 2,
    ).length;
    const needed = requiredSupervisors(pgy1, seniors);
    if (supervisors < needed) {
      violations.push({
        reason: 'SUPERVISION_RATIO',
        message: `block ${first.blockDate} ${first.blockHalf} would have ${supervisors} supervising faculty for ${pgy1} PGY-1 and ${seniors} PGY-2/3 residents (needs ${needed})`,
        subject: `block/${first.blockDate}/${first.blockHalf}`,
      });
    }
  }
  return violations;
}

function clinicOverLimit(
  t: WeekTransfer,
  role: FacultyRole,
  before: readonly AssignmentFact[],
  after: AssignmentFact[],
): RuleViolation[] {
  const count = (list: readonly AssignmentFact[]) =>
    list.filter(
      (a) =>
        a.personId === t.receiver && a.rotation === CLINIC_ROTATION && inWeek(a.blockDate, t.week),
    ).length;
  const limit = WEEKLY_CLINIC_LIMIT[role];
  const held = count(after);
  // A week that was already over the limit is not made worse by a swap that adds no clinic.
  if (held <= limit || held <= count(before)) return [];
  return [
    {
      reason: 'CLINIC_LIMIT',
      message: `faculty ${t.receiver} (${role}) would hold ${held} clinic half-days in week ${t.week}; the limit is ${limit}`,
      subject: facultyWeek(t.receiver, t.week),
    },
  ];
}

function backToBackFmit(t: WeekTransfer, after: AssignmentFact[]): RuleViolation[] {
  const fmitWeeks = new Set(
    after
      .filter((a) => a.personId === t.receiver && a.rotation === FMIT_ROTATION)
      .map((a) => mondayOf(a.blockDate)),
  );
  if (!fmitWeeks.has(t.week)) return [];
  // Weeks are named by their Monday, so FMIT weeks 7 days apart or less are adjacent.
  const neighbours = [addDays(t.week, -7), addDays(t.week, 7)].filter((w) => fmitWeeks.has(w));
  return neighbours.map((w) => ({
    reason: 'BACK_TO_BACK_FMIT',
    message: `faculty ${t.receiver} would have FMIT in week ${t.week} and in the adjacent week ${w}`,
    subject: facultyWeek(t.receiver, t.week),
  }));
}

// By day count rather than by comparing with the week's Sunday: this runs for
// every fact of every rule, and formatting that Sunday was 1 % of a swap's CPU.
function inWeek(date: string, week: string): boolean {
  const day = daysBetween(week, date);
  return day >= 0 && day <= 6;
}

function facultyWeek(facultyId: string, week: string): string {
  return `faculty/${facultyId}/week/${week}`;
}
