import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Temporal } from 'temporal-polyfill';
import { addDays } from '../src/domain/calendar';
import { programClock } from '../src/domain/clock';
import type { AssignmentRole } from '../src/schedule/assignment.entity';
import { FACULTY_ROLES, type FacultyRole } from '../src/schedule/person.entity';
import type {
  AbsenceFact,
  AssignmentFact,
  PersonFacts,
  ScheduleFacts,
} from '../src/swaps/schedule-facts';
import { type SwapCommand, transfersOf } from '../src/swaps/swap-command';
import {
  judgeSwap,
  requiredSupervisors,
  type RuleContext,
  ruleContextAt,
  WEEKLY_CLINIC_LIMIT,
} from '../src/swaps/swap-rules';
import { TestClock } from './support/test-clock';

/**
 * The pure rules, judged on hand-built schedules. `factsFor` builds the slice
 * of a schedule that the facts reader would load for a command, so each test
 * states only the schedule.
 */

const TODAY = '2030-01-07';
const CTX: RuleContext = { today: TODAY, shortNoticeDays: 14 };
const W1 = '2030-02-04';
const W2 = '2030-02-11';
const W3 = '2030-02-18';
const A = 'faculty-a';
const B = 'faculty-b';

interface Schedule {
  people: PersonFacts[];
  assignments: AssignmentFact[];
  absences?: AbsenceFact[];
}

function faculty(id: string, role: FacultyRole = 'core'): PersonFacts {
  return { id, kind: 'faculty', facultyRole: role, pgyLevel: null };
}

function resident(id: string, pgyLevel: 1 | 2 | 3): PersonFacts {
  return { id, kind: 'resident', facultyRole: null, pgyLevel };
}

let nextId = 0;
function assignment(
  who: PersonFacts,
  date: string,
  half: 'AM' | 'PM' = 'AM',
  options: { rotation?: string; role?: AssignmentRole } = {},
): AssignmentFact {
  return {
    id: `assignment-${nextId++}`,
    blockId: `block/${date}/${half}`,
    blockDate: date,
    blockHalf: half,
    personId: who.id,
    personKind: who.kind,
    pgyLevel: who.pgyLevel,
    role: options.role ?? 'primary',
    rotation: options.rotation ?? 'FMIT',
    version: 1,
  };
}

/** Both halves of the given days (0 = Monday) of a week. */
function week(
  who: PersonFacts,
  monday: string,
  options: { rotation?: string; days?: number[] } = {},
): AssignmentFact[] {
  return (options.days ?? [0, 1, 2, 3, 4, 5, 6]).flatMap((d) =>
    (['AM', 'PM'] as const).map((half) => assignment(who, addDays(monday, d), half, options)),
  );
}

const inRange = (date: string, from: string, to: string) => date >= from && date <= to;

/** What `readScheduleFacts` loads for `command` from a schedule. */
function factsFor(command: SwapCommand, schedule: Schedule): ScheduleFacts {
  const transfers = transfersOf(command);
  const wanted = new Set([command.sourceFacultyId, command.targetFacultyId]);
  const windows = transfers.map((t) => [addDays(t.week, -7), addDays(t.week, 13)] as const);
  const movingBlocks = new Set(
    schedule.assignments
      .filter((a) =>
        transfers.some(
          (t) => a.personId === t.giver && inRange(a.blockDate, t.week, addDays(t.week, 6)),
        ),
      )
      .map((a) => a.blockId),
  );
  return {
    people: new Map(schedule.people.filter((p) => wanted.has(p.id)).map((p) => [p.id, p])),
    facultyAssignments: schedule.assignments.filter(
      (a) => wanted.has(a.personId) && windows.some(([from, to]) => inRange(a.blockDate, from, to)),
    ),
    affectedBlockRosters: schedule.assignments.filter((a) => movingBlocks.has(a.blockId)),
    blockingAbsences: (schedule.absences ?? []).filter(
      (ab) =>
        wanted.has(ab.personId) &&
        windows.some(([from, to]) => ab.startDate <= to && ab.endDate >= from),
    ),
    // The rules never read calls: they move with the week whatever they are.
    cascadingCalls: [],
  };
}

function absorb(source = A, sourceWeek = W1, target = B): SwapCommand {
  return {
    sourceFacultyId: source,
    sourceWeek,
    targetFacultyId: target,
    targetWeek: null,
    swapType: 'ABSORB',
    reason: '',
  };
}

function oneToOne(sourceWeek = W1, targetWeek = W3, source = A, target = B): SwapCommand {
  return {
    sourceFacultyId: source,
    sourceWeek,
    targetFacultyId: target,
    targetWeek,
    swapType: 'ONE_TO_ONE',
    reason: '',
  };
}

function judge(command: SwapCommand, schedule: Schedule, ctx = CTX) {
  return judgeSwap(command, factsFor(command, schedule), ctx);
}

const reasons = (violations: { reason: string }[]) => violations.map((v) => v.reason);

describe('requiredSupervisors', () => {
  it.each([
    [0, 0, 0],
    [1, 0, 1],
    [2, 0, 1],
    [3, 0, 2],
    [0, 1, 1],
    [0, 4, 1],
    [0, 5, 2],
    [1, 2, 1],
    [1, 3, 2],
    [2, 1, 2],
    [4, 4, 3],
  ])('%i PGY-1 and %i PGY-2/3 residents need %i faculty', (pgy1, seniors, needed) => {
    expect(requiredSupervisors(pgy1, seniors)).toBe(needed);
  });

  it('counts one PGY-1 as two seniors', () => {
    fc.assert(
      fc.property(fc.nat(50), fc.nat(50), (pgy1, seniors) => {
        expect(requiredSupervisors(pgy1, seniors)).toBe(requiredSupervisors(0, 2 * pgy1 + seniors));
        expect(requiredSupervisors(pgy1, seniors) * 4).toBeGreaterThanOrEqual(2 * pgy1 + seniors);
        expect((requiredSupervisors(pgy1, seniors) - 1) * 4).toBeLessThan(2 * pgy1 + seniors);
      }),
    );
  });
});

describe('judgeSwap', () => {
  const a = faculty(A);
  const b = faculty(B);

  it('moves every assignment of the giver in the week, and nothing else', () => {
    const given = week(a, W1);
    const kept = [
      ...week(a, W2, { rotation: 'inpatient' }),
      ...week(b, W2, { rotation: 'inpatient' }),
    ];
    const verdict = judge(absorb(), { people: [a, b], assignments: [...given, ...kept] });
    expect(verdict.errors).toEqual([]);
    expect(verdict.warnings).toEqual([]);
    expect(verdict.moves.map((m) => [m.assignment.id, m.to]).sort()).toEqual(
      given.map((g) => [g.id, B]).sort(),
    );
  });

  it('moves both halves of a one-to-one swap, each to the other person', () => {
    const fromA = week(a, W1);
    const fromB = week(b, W3, { rotation: 'inpatient' });
    const verdict = judge(oneToOne(), { people: [a, b], assignments: [...fromA, ...fromB] });
    expect(verdict.errors).toEqual([]);
    expect(new Map(verdict.moves.map((m) => [m.assignment.id, m.to]))).toEqual(
      new Map([...fromA.map((x) => [x.id, B] as const), ...fromB.map((x) => [x.id, A] as const)]),
    );
  });

  describe('NOT_FACULTY and FACULTY_NOT_FOUND', () => {
    it('reports a resident and an unknown person, and judges nothing else', () => {
      const r = resident('resident-r', 2);
      const verdict = judge(absorb(r.id, '2029-01-01', 'nobody'), { people: [r], assignments: [] });
      expect(verdict.errors).toEqual([
        expect.objectContaining({ reason: 'NOT_FACULTY', subject: 'person/resident-r' }),
        expect.objectContaining({ reason: 'FACULTY_NOT_FOUND', subject: 'person/nobody' }),
      ]);
      expect(verdict.warnings).toEqual([]);
      expect(verdict.moves).toEqual([]);
    });
  });

  describe('PAST_WEEK and SHORT_NOTICE', () => {
    it.each([
      [addDays(TODAY, -7), ['PAST_WEEK'], []],
      [TODAY, [], ['SHORT_NOTICE']],
      [addDays(TODAY, 7), [], ['SHORT_NOTICE']],
      [addDays(TODAY, 14), [], []],
    ])('a week starting %s gives errors %j and warnings %j', (monday, errors, warnings) => {
      const verdict = judge(absorb(A, monday), { people: [a, b], assignments: week(a, monday) });
      expect(reasons(verdict.errors)).toEqual(errors);
      expect(reasons(verdict.warnings)).toEqual(warnings);
    });

    it('honours the configured notice period', () => {
      const monday = addDays(TODAY, 21);
      const schedule = { people: [a, b], assignments: week(a, monday) };
      expect(
        reasons(judge(absorb(A, monday), schedule, { today: TODAY, shortNoticeDays: 22 }).warnings),
      ).toEqual(['SHORT_NOTICE']);
      expect(
        reasons(judge(absorb(A, monday), schedule, { today: TODAY, shortNoticeDays: 21 }).warnings),
      ).toEqual([]);
    });

    describe.each(['America/New_York', 'Pacific/Auckland'])(
      'at the program midnight in %s',
      (zone) => {
        /** One second either side of 00:00 on `date` in `zone`, from the time zone database. */
        const aroundMidnight = (date: string) => {
          const midnight = Temporal.PlainDate.from(date).toZonedDateTime(zone).epochMilliseconds;
          return { before: new Date(midnight - 1000), after: new Date(midnight + 1000) };
        };
        const judgeAt = (instant: Date, monday: string) =>
          judge(
            absorb(A, monday),
            { people: [a, b], assignments: week(a, monday) },
            ruleContextAt(programClock(new TestClock(instant), zone), 14),
          );

        it('SHORT_NOTICE starts when the day 13 days before the week begins locally', () => {
          const { before, after } = aroundMidnight(addDays(W1, -13));
          expect(reasons(judgeAt(before, W1).warnings)).toEqual([]);
          expect(reasons(judgeAt(after, W1).warnings)).toEqual(['SHORT_NOTICE']);
        });

        it('PAST_WEEK starts when the day after the Monday begins locally', () => {
          const { before, after } = aroundMidnight(addDays(W1, 1));
          expect(reasons(judgeAt(before, W1).errors)).toEqual([]);
          expect(reasons(judgeAt(after, W1).errors)).toEqual(['PAST_WEEK']);
        });
      },
    );

    it('reports a week only once when both sides of a one-to-one swap name it', () => {
      const monday = addDays(TODAY, -7);
      const verdict = judge(oneToOne(monday, monday), {
        people: [a, b],
        assignments: [...week(a, monday, { days: [0] }), ...week(b, monday, { days: [1] })],
      });
      expect(reasons(verdict.errors)).toEqual(['PAST_WEEK']);
    });
  });

  describe('NO_ASSIGNMENTS', () => {
    it('reports the side of a one-to-one swap that has nothing in its week', () => {
      const verdict = judge(oneToOne(), { people: [a, b], assignments: week(b, W3) });
      expect(verdict.errors).toEqual([
        expect.objectContaining({ reason: 'NO_ASSIGNMENTS', subject: `faculty/${A}/week/${W1}` }),
      ]);
    });

    it('does not count work of the days just outside the week', () => {
      const verdict = judge(absorb(), {
        people: [a, b],
        assignments: [assignment(a, addDays(W1, -1)), assignment(a, addDays(W1, 7))],
      });
      expect(reasons(verdict.errors)).toEqual(['NO_ASSIGNMENTS']);
    });
  });

  describe('FACULTY_ABSENT', () => {
    const away = (personId: string, startDate: string, endDate: string): AbsenceFact => ({
      personId,
      startDate,
      endDate,
      type: 'tdy',
    });

    it.each([
      ['ends on the Monday', true, away(B, addDays(W1, -5), W1)],
      ['starts on the Sunday', true, away(B, addDays(W1, 6), addDays(W1, 9))],
      ['ends the Sunday before', false, away(B, addDays(W1, -5), addDays(W1, -1))],
      ['starts the Monday after', false, away(B, addDays(W1, 7), addDays(W1, 9))],
      ['is the giver’s, not the receiver’s', false, away(A, W1, addDays(W1, 6))],
    ])('a blocking absence that %s: absent=%s', (_, absent, absence) => {
      const verdict = judge(absorb(), {
        people: [a, b],
        assignments: week(a, W1),
        absences: [absence],
      });
      expect(reasons(verdict.errors)).toEqual(absent ? ['FACULTY_ABSENT'] : []);
    });
  });

  describe('DOUBLE_BOOKING', () => {
    it('reports each block once, however many assignments collide', () => {
      const verdict = judge(absorb(), {
        people: [a, b],
        assignments: [
          ...week(a, W1),
          assignment(b, addDays(W1, 1), 'AM'),
          assignment(b, addDays(W1, 3), 'PM'),
        ],
      });
      expect(verdict.errors.map((e) => [e.reason, e.subject]).sort()).toEqual([
        ['DOUBLE_BOOKING', `block/${addDays(W1, 1)}/AM`],
        ['DOUBLE_BOOKING', `block/${addDays(W1, 3)}/PM`],
      ]);
    });

    it('ignores the receiver’s work in other weeks', () => {
      const verdict = judge(absorb(), {
        people: [a, b],
        assignments: [...week(a, W1), ...week(b, W2, { rotation: 'inpatient' })],
      });
      expect(verdict.errors).toEqual([]);
    });
  });

  describe('SUPERVISION_RATIO', () => {
    const c = faculty('faculty-c');
    const block = (role: AssignmentRole, residents: PersonFacts[]) => [
      assignment(a, W1, 'AM', { role: 'primary' }),
      assignment(c, W1, 'AM', { role }),
      ...residents.map((r) => assignment(r, W1, 'AM')),
    ];
    const juniors = [1, 2, 3].map((n) => resident(`pgy1-${n}`, 1));
    const senior = resident('pgy3', 3);

    it.each([
      ['a supervising colleague, 3 PGY-1 and a PGY-3', [], 'supervising', [...juniors, senior]],
      ['a primary colleague, 3 PGY-1', [], 'primary', juniors],
      ['a backup colleague, 3 PGY-1', ['SUPERVISION_RATIO'], 'backup', juniors],
      ['a backup colleague, 2 PGY-1', [], 'backup', juniors.slice(0, 2)],
    ] as const)('a block with %s: %j', (_, expected, role, residents) => {
      const verdict = judge(absorb(), { people: [a, b], assignments: block(role, [...residents]) });
      expect(reasons(verdict.errors)).toEqual(expected);
    });

    it('counts a faculty member who holds two assignments in a block once', () => {
      const verdict = judge(absorb(), {
        people: [a, b],
        assignments: [
          assignment(a, W1, 'AM'),
          assignment(b, W1, 'AM'),
          ...juniors.map((r) => assignment(r, W1, 'AM')),
        ],
      });
      expect(reasons(verdict.errors)).toEqual(['DOUBLE_BOOKING', 'SUPERVISION_RATIO']);
    });
  });

  describe('CLINIC_LIMIT', () => {
    const clinic = (who: PersonFacts, n: number, monday = W1) =>
      Array.from({ length: n }, (_, i) =>
        assignment(who, addDays(monday, Math.floor(i / 2)), i % 2 === 0 ? 'AM' : 'PM', {
          rotation: 'clinic',
        }),
      );

    it.each(FACULTY_ROLES.map((role) => [role, WEEKLY_CLINIC_LIMIT[role]] as const))(
      'a %s may receive %i clinic half-days, and not one more',
      (role, limit) => {
        const receiver = faculty(B, role);
        const sundayWard = assignment(a, addDays(W1, 6), 'PM', { rotation: 'inpatient' });
        const withClinic = (n: number) => ({
          people: [a, receiver],
          assignments: [...clinic(a, n), sundayWard],
        });
        expect(judge(absorb(), withClinic(limit)).errors).toEqual([]);
        expect(reasons(judge(absorb(), withClinic(limit + 1)).errors)).toEqual(['CLINIC_LIMIT']);
      },
    );

    it('counts the clinic the receiver already holds that week', () => {
      const receiver = faculty(B, 'apd');
      const held = assignment(receiver, addDays(W1, 6), 'PM', { rotation: 'clinic' });
      const verdict = judge(absorb(), {
        people: [a, receiver],
        assignments: [...clinic(a, 2), held],
      });
      expect(verdict.errors).toEqual([
        expect.objectContaining({ reason: 'CLINIC_LIMIT', subject: `faculty/${B}/week/${W1}` }),
      ]);
    });

    it('lets a receiver already over the limit take work that is not clinic', () => {
      const receiver = faculty(B, 'pd');
      const held = assignment(receiver, addDays(W1, 6), 'PM', { rotation: 'clinic' });
      const verdict = judge(absorb(), {
        people: [a, receiver],
        assignments: [...week(a, W1, { days: [0, 1] }), held],
      });
      expect(verdict.errors).toEqual([]);
    });

    it('judges the week a one-to-one source receives by the source’s role', () => {
      const chief = faculty(A, 'dept_chief');
      const verdict = judge(oneToOne(), {
        people: [chief, b],
        assignments: [...week(chief, W1), ...clinic(b, 2, W3)],
      });
      expect(verdict.errors).toEqual([
        expect.objectContaining({ reason: 'CLINIC_LIMIT', subject: `faculty/${A}/week/${W3}` }),
      ]);
    });
  });

  describe('BACK_TO_BACK_FMIT', () => {
    it('reports each adjacent FMIT week of the receiver', () => {
      const verdict = judge(absorb(A, W2), {
        people: [a, b],
        assignments: [...week(a, W2), ...week(b, W1), ...week(b, W3)],
      });
      expect(verdict.errors.map((e) => e.message)).toEqual([
        expect.stringContaining(`adjacent week ${W1}`),
        expect.stringContaining(`adjacent week ${W3}`),
      ]);
      expect(new Set(reasons(verdict.errors))).toEqual(new Set(['BACK_TO_BACK_FMIT']));
    });

    it('judges the schedule after the swap: adjacent weeks swapped one-to-one are fine', () => {
      const verdict = judge(oneToOne(W1, W2), {
        people: [a, b],
        assignments: [...week(a, W1), ...week(b, W2)],
      });
      expect(verdict.errors).toEqual([]);
    });

    it('ignores an adjacent week that is not FMIT', () => {
      const verdict = judge(absorb(), {
        people: [a, b],
        assignments: [...week(a, W1), ...week(b, W2, { rotation: 'inpatient' })],
      });
      expect(verdict.errors).toEqual([]);
    });
  });

  it('reports every broken rule, in the fixed order of the rules', () => {
    const receiver = faculty(B, 'pd');
    const verdict = judge(absorb(A, addDays(TODAY, -7)), {
      people: [a, receiver],
      assignments: [
        ...week(a, addDays(TODAY, -7), { rotation: 'clinic', days: [0] }),
        ...week(a, addDays(TODAY, -7), { rotation: 'FMIT', days: [1] }),
        assignment(receiver, addDays(TODAY, -7), 'AM', { rotation: 'FMIT' }),
        ...week(receiver, TODAY),
        ...[1, 2, 3].map((n) => assignment(resident(`r${n}`, 1), addDays(TODAY, -6), 'AM')),
      ],
      absences: [
        {
          personId: B,
          startDate: addDays(TODAY, -5),
          endDate: addDays(TODAY, -5),
          type: 'bereavement',
        },
      ],
    });
    expect(reasons(verdict.errors)).toEqual([
      'PAST_WEEK',
      'FACULTY_ABSENT',
      'DOUBLE_BOOKING',
      'SUPERVISION_RATIO',
      'CLINIC_LIMIT',
      'BACK_TO_BACK_FMIT',
    ]);
  });
});

describe('judgeSwap properties', () => {
  const RULE_ORDER = [
    'FACULTY_NOT_FOUND',
    'NOT_FACULTY',
    'PAST_WEEK',
    'NO_ASSIGNMENTS',
    'FACULTY_ABSENT',
    'DOUBLE_BOOKING',
    'SUPERVISION_RATIO',
    'CLINIC_LIMIT',
    'BACK_TO_BACK_FMIT',
  ];
  const FIRST_MONDAY = '2030-01-14';
  const MONDAYS = [0, 1, 2, 3].map((n) => addDays(FIRST_MONDAY, 7 * n));
  const others = [
    faculty('faculty-c'),
    resident('r1', 1),
    resident('r2', 1),
    resident('r3', 2),
    resident('r4', 3),
  ];

  /** Random schedules of A, B and a few others over five weeks, with nobody twice in a block. */
  const arbitrarySchedule = fc
    .record({
      roleA: fc.constantFrom(...FACULTY_ROLES),
      roleB: fc.constantFrom(...FACULTY_ROLES),
      slots: fc.uniqueArray(
        fc.record({
          who: fc.nat(others.length + 1),
          day: fc.nat(34),
          half: fc.constantFrom('AM' as const, 'PM' as const),
          role: fc.constantFrom<AssignmentRole>('primary', 'supervising', 'backup'),
          rotation: fc.constantFrom('FMIT', 'clinic', 'inpatient'),
        }),
        { selector: (s) => `${s.who}|${s.day}|${s.half}`, maxLength: 60 },
      ),
      absences: fc.array(
        fc.record({
          who: fc.constantFrom(A, B),
          start: fc.nat(34),
          length: fc.nat(5),
          blocking: fc.boolean(),
        }),
        { maxLength: 2 },
      ),
    })
    .map(({ roleA, roleB, slots, absences }): Schedule => {
      const people = [faculty(A, roleA), faculty(B, roleB), ...others];
      return {
        people,
        assignments: slots.map((s) =>
          assignment(people[s.who]!, addDays(FIRST_MONDAY, s.day), s.half, s),
        ),
        absences: absences
          .filter((ab) => ab.blocking)
          .map((ab) => ({
            personId: ab.who,
            startDate: addDays(FIRST_MONDAY, ab.start),
            endDate: addDays(FIRST_MONDAY, ab.start + ab.length),
            type: 'deployment',
          })),
      };
    });
  const arbitraryContext = fc
    .integer({ min: -7, max: 21 })
    .map((offset): RuleContext => ({ today: addDays(FIRST_MONDAY, offset), shortNoticeDays: 14 }));

  function shuffled<T>(list: readonly T[], seed: number): T[] {
    const copy = [...list];
    let state = seed || 1;
    for (let i = copy.length - 1; i > 0; i--) {
      state = (state * 1103515245 + 12345) % 2 ** 31;
      const j = state % (i + 1);
      [copy[i], copy[j]] = [copy[j]!, copy[i]!];
    }
    return copy;
  }

  it('a one-to-one swap trades exactly the two weeks and never changes how many assignments a block has', () => {
    fc.assert(
      fc.property(
        arbitrarySchedule,
        fc.constantFrom(...MONDAYS),
        fc.constantFrom(...MONDAYS),
        arbitraryContext,
        (schedule, sourceWeek, targetWeek, ctx) => {
          const command = oneToOne(sourceWeek, targetWeek);
          const verdict = judge(command, schedule, ctx);
          const giving = (a: AssignmentFact) =>
            transfersOf(command).find(
              (t) => t.giver === a.personId && inRange(a.blockDate, t.week, addDays(t.week, 6)),
            );

          // Exactly the givers' assignments in their weeks move, each to its receiver.
          const moved = new Map(verdict.moves.map((m) => [m.assignment.id, m.to]));
          expect(moved.size).toBe(verdict.moves.length);
          for (const a of schedule.assignments) expect(moved.get(a.id)).toBe(giving(a)?.receiver);

          // The post-state keeps every block's head count.
          const after = schedule.assignments.map((a) => ({
            ...a,
            personId: moved.get(a.id) ?? a.personId,
          }));
          const perBlock = (list: AssignmentFact[]) => {
            const counts = new Map<string, number>();
            for (const a of list) counts.set(a.blockId, (counts.get(a.blockId) ?? 0) + 1);
            return counts;
          };
          expect(perBlock(after)).toEqual(perBlock(schedule.assignments));

          // Without a DOUBLE_BOOKING, nobody holds a block twice afterwards.
          if (!reasons(verdict.errors).includes('DOUBLE_BOOKING')) {
            const keys = after.map((a) => `${a.blockId}|${a.personId}`);
            expect(new Set(keys).size).toBe(keys.length);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('reports violations in the order of the rules, whatever order the facts arrive in', () => {
    fc.assert(
      fc.property(
        arbitrarySchedule,
        fc.constantFrom(...MONDAYS),
        fc.option(fc.constantFrom(...MONDAYS), { nil: null }),
        arbitraryContext,
        fc.integer({ min: 1, max: 2 ** 30 }),
        (schedule, sourceWeek, targetWeek, ctx, seed) => {
          const command = targetWeek ? oneToOne(sourceWeek, targetWeek) : absorb(A, sourceWeek);
          const facts = factsFor(command, schedule);
          const verdict = judgeSwap(command, facts, ctx);
          const ranks = verdict.errors.map((e) => RULE_ORDER.indexOf(e.reason));
          expect(ranks.every((r) => r >= 0)).toBe(true);
          expect(ranks).toEqual([...ranks].sort((x, y) => x - y));

          const reordered = judgeSwap(
            command,
            {
              people: new Map(shuffled([...facts.people], seed)),
              facultyAssignments: shuffled(facts.facultyAssignments, seed),
              affectedBlockRosters: shuffled(facts.affectedBlockRosters, seed + 1),
              blockingAbsences: shuffled(facts.blockingAbsences, seed + 2),
              cascadingCalls: facts.cascadingCalls,
            },
            ctx,
          );
          expect(reasons(reordered.errors)).toEqual(reasons(verdict.errors));
          expect(reasons(reordered.warnings)).toEqual(reasons(verdict.warnings));
          // Messages may quote whichever fact matched first; reasons and subjects may not vary.
          const bySubject = (list: { reason: string; subject: string }[]) =>
            list.map((v) => `${v.reason}|${v.subject}`).sort();
          expect(bySubject(reordered.errors)).toEqual(bySubject(verdict.errors));
        },
      ),
      { numRuns: 300 },
    );
  });
});
