/**
 * Plans the demo program's academic year in memory: blocks, FMIT weeks, clinic,
 * inpatient, calls and absences. No database here, so the plan can be reasoned
 * about (and changed) apart from how it is written.
 */
import { createHash, randomUUID } from 'node:crypto';
import { addDays, mondayOf, parseIsoDate } from '../domain/calendar';
import { type AbsenceType, isBlockingAbsence } from '../schedule/absence-policy';
import { type AssignmentRole, CLINIC_ROTATION, FMIT_ROTATION } from '../schedule/assignment.entity';
import type { BlockHalf } from '../schedule/block.entity';
import type { CallType } from '../schedule/call-assignment.entity';
import type { FacultyRole } from '../schedule/person.entity';
import { WEEKLY_CLINIC_LIMIT } from '../swaps/swap-rules';
import { DEMO_FACULTY, DEMO_RESIDENTS_BY_PGY } from './demo-roster';
import { seededRandom } from './seeded-random';

const INPATIENT_ROTATION = 'inpatient';
const DEFAULT_SEED = 0x5eed_2026;
/** How many pairs of faculty get weeks kept free for each other (see {@link DemoPlan.swapReady}). */
const SWAP_READY_PAIRS = 3;
/** Swap-ready weeks start this many weeks after today's, past the short-notice warning. */
const SWAP_READY_LEAD_WEEKS = 3;

/** Roles that may take an FMIT week; the others run no inpatient service. */
const FMIT_ROLES: ReadonlySet<FacultyRole> = new Set(['pd', 'apd', 'oic', 'dept_chief', 'core']);

/** Who is away, relative to the Monday of the week the absence starts in. */
interface AbsenceSpec {
  who: FacultyRole | 'pgy1' | 'pgy23';
  type: AbsenceType;
  /** Days after Monday that the absence starts. */
  startOffset: number;
  days: number;
}

// A mix of blocking and non-blocking leave, so the policy has something to decide.
const ABSENCES: readonly AbsenceSpec[] = [
  { who: 'core', type: 'vacation', startOffset: 0, days: 5 },
  { who: 'apd', type: 'conference', startOffset: 2, days: 3 },
  { who: 'core', type: 'sick', startOffset: 1, days: 2 },
  { who: 'core', type: 'medical', startOffset: 0, days: 10 },
  { who: 'oic', type: 'tdy', startOffset: 0, days: 5 },
  { who: 'dept_chief', type: 'family_emergency', startOffset: 3, days: 3 },
  { who: 'sports_med', type: 'conference', startOffset: 0, days: 4 },
  { who: 'pgy23', type: 'vacation', startOffset: 0, days: 7 },
  { who: 'pgy1', type: 'sick', startOffset: 1, days: 4 },
];

// Each row has exactly its table's columns, so the writer can insert it as it is.
interface PersonRow {
  id: string;
  name: string;
  kind: 'faculty' | 'resident';
  pgyLevel: number | null;
  facultyRole: FacultyRole | null;
  version: number;
}
interface BlockRow {
  id: string;
  date: string;
  half: BlockHalf;
  version: number;
}
interface AssignmentRow {
  id: string;
  block: string;
  person: string;
  role: AssignmentRole;
  rotation: string;
  version: number;
}
interface CallRow {
  id: string;
  date: string;
  person: string;
  callType: CallType;
  version: number;
}
interface AbsenceRow {
  id: string;
  person: string;
  startDate: string;
  endDate: string;
  type: AbsenceType;
  blocking: boolean;
  version: number;
}

/** One academic year of the demo program, as rows ready to insert. */
export interface DemoPlan {
  /** First and last scheduled day (ISO dates): a Monday and a Sunday. */
  firstDay: string;
  lastDay: string;
  people: PersonRow[];
  blocks: BlockRow[];
  assignments: AssignmentRow[];
  calls: CallRow[];
  absences: AbsenceRow[];
  /**
   * Pairs of FMIT weeks whose holders are each kept free of all work in the
   * other's week (and are away in neither, and hold no FMIT week next to it),
   * so one-to-one swaps of the two weeks, and absorbs of either by the other,
   * break no rule when the demo starts.
   */
  swapReady: Array<{ a: string; aWeek: string; b: string; bWeek: string }>;
}

/**
 * A demo person's id, the same in every demo database (a UUID made from the
 * name), so the README's walkthrough names real people of any demo seed.
 */
export function demoPersonId(name: string): string {
  const hex = createHash('sha256').update(`swap-service demo person ${name}`).digest('hex');
  // Version 8 (custom) and the RFC 9562 variant, so it is a well-formed UUID.
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${((parseInt(hex[16]!, 16) & 3) | 8).toString(16)}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/**
 * The whole demo schedule of the academic year (July to June) that contains
 * `today`, an ISO date. Everything the rules care about (who works which block)
 * comes from `random`, uniform numbers in [0, 1); only the ids of blocks, rows
 * and absences do not (people's come from their names, see {@link demoPersonId}).
 * Without `random`, a PRNG with a fixed seed shapes it, so every demo database
 * has the same schedule for the same academic year.
 */
export function planDemoProgram(
  today: string,
  random: () => number = seededRandom(DEFAULT_SEED),
): DemoPlan {
  const todayDate = parseIsoDate(today);
  if (!todayDate)
    throw new TypeError(`today must be an ISO date (YYYY-MM-DD), got ${JSON.stringify(today)}`);
  // The academic year starts on July 1.
  const startYear =
    todayDate.getUTCMonth() >= 6 ? todayDate.getUTCFullYear() : todayDate.getUTCFullYear() - 1;
  // Both ends are widened to whole weeks, because swaps move whole weeks named by their Monday.
  const firstDay = mondayOf(`${startYear}-07-01`);
  const lastDay = addDays(mondayOf(`${startYear + 1}-06-30`), 6);
  const weeks: string[] = [];
  for (let monday = firstDay; monday <= lastDay; monday = addDays(monday, 7)) weeks.push(monday);

  const pick = picker(random);
  const people = makePeople();
  const faculty = people.filter((p) => p.kind === 'faculty');
  const ofRole = (role: FacultyRole) => faculty.filter((p) => p.facultyRole === role);
  const pgy1 = people.filter((p) => p.pgyLevel === 1);
  const pgy23 = people.filter((p) => (p.pgyLevel ?? 0) >= 2);

  const blocks: BlockRow[] = [];
  const blockId = new Map<string, string>();
  for (let day = firstDay; day <= lastDay; day = addDays(day, 1)) {
    for (const half of ['AM', 'PM'] as const) {
      const id = randomUUID();
      blocks.push({ id, date: day, half, version: 1 });
      blockId.set(`${day} ${half}`, id);
    }
  }

  const fmitFaculty = rotateWithoutRepeats(
    faculty.filter((p) => p.facultyRole && FMIT_ROLES.has(p.facultyRole)),
    weeks.length,
    pick,
  );
  const fmitPgy1 = rotateWithoutRepeats(pgy1, weeks.length, pick);
  const fmitSenior = rotateWithoutRepeats(pgy23, weeks.length, pick);
  const onFmit = (w: number, person: PersonRow) =>
    fmitFaculty[w] === person || fmitPgy1[w] === person || fmitSenior[w] === person;

  // Absences are placed before the weekly work, so the absent can simply be left out of it.
  const awayWeeks = new Map<PersonRow, Set<number>>();
  const isAway = (w: number, person: PersonRow) => awayWeeks.get(person)?.has(w) ?? false;
  const absences: AbsenceRow[] = [];
  // Spread over the weeks still ahead, where a demo of swaps and conflicts looks.
  const todayWeek = Math.max(0, weeks.indexOf(mondayOf(today)));
  const step = Math.max(1, Math.floor((weeks.length - todayWeek - 1) / ABSENCES.length));
  let nextCandidate = todayWeek + 1;
  for (const spec of ABSENCES) {
    const pool = spec.who === 'pgy1' ? pgy1 : spec.who === 'pgy23' ? pgy23 : ofRole(spec.who);
    const person = pick.one(pool);
    const span = Math.floor((spec.startOffset + spec.days - 1) / 7) + 1;
    const w = findFreeWeeks(
      weeks.length,
      span,
      nextCandidate,
      (i) => !onFmit(i, person) && !isAway(i, person),
    );
    nextCandidate += step;
    const away = awayWeeks.get(person) ?? new Set<number>();
    for (let i = w; i < w + span; i++) away.add(i);
    awayWeeks.set(person, away);
    const startDate = addDays(weeks[w]!, spec.startOffset);
    const endDate = addDays(startDate, spec.days - 1);
    absences.push({
      id: randomUUID(),
      person: person.id,
      startDate,
      endDate,
      type: spec.type,
      blocking: isBlockingAbsence(spec.type, startDate, endDate),
      version: 1,
    });
  }

  // Weeks kept free of all work for one person, so a swap into them is valid.
  const keptFree = new Set<string>();
  const isKeptFree = (w: number, person: PersonRow) => keptFree.has(`${w} ${person.id}`);
  const swapReady: DemoPlan['swapReady'] = [];
  for (let wa = todayWeek + SWAP_READY_LEAD_WEEKS; wa < weeks.length - 1; wa++) {
    if (swapReady.length === SWAP_READY_PAIRS) break;
    const a = fmitFaculty[wa]!;
    const fitsIn = (w: number, person: PersonRow) =>
      !isAway(w, person) && fmitFaculty[w - 1] !== person && fmitFaculty[w + 1] !== person;
    for (let wb = wa + 2; wb < Math.min(weeks.length - 1, wa + 8); wb++) {
      const b = fmitFaculty[wb]!;
      if (b === a || !fitsIn(wa, b) || !fitsIn(wb, a)) continue;
      keptFree.add(`${wa} ${b.id}`);
      keptFree.add(`${wb} ${a.id}`);
      swapReady.push({ a: a.id, aWeek: weeks[wa]!, b: b.id, bWeek: weeks[wb]! });
      // The next pair starts clear of this one's weeks and their neighbours.
      wa = wb + 1;
      break;
    }
  }

  const assignments: AssignmentRow[] = [];
  // A person holds at most one assignment per block.
  const busy = new Set<string>();
  const assign = (block: string, person: PersonRow, role: AssignmentRole, rotation: string) => {
    const key = `${block} ${person.id}`;
    if (busy.has(key))
      throw new Error(`demo planner double-booked ${person.name} in block ${block}`);
    busy.add(key);
    assignments.push({ id: randomUUID(), block, person: person.id, role, rotation, version: 1 });
  };
  const isFree = (block: string, person: PersonRow) => !busy.has(`${block} ${person.id}`);
  const load = new Map<string, number>();
  const bump = (counter: string, person: PersonRow) =>
    load.set(`${counter} ${person.id}`, (load.get(`${counter} ${person.id}`) ?? 0) + 1);
  const leastLoaded = (counter: string, pool: readonly PersonRow[]) =>
    pick.leastBy(pool, (p) => load.get(`${counter} ${p.id}`) ?? 0);

  weeks.forEach((monday, w) => {
    const blockOf = (day: number, half: BlockHalf) =>
      blockId.get(`${addDays(monday, day)} ${half}`)!;
    const available = (pool: readonly PersonRow[]) =>
      pool.filter((p) => !onFmit(w, p) && !isAway(w, p) && !isKeptFree(w, p));

    // FMIT: one faculty member and two residents (a PGY-1 and a senior) hold the service all week.
    for (let day = 0; day < 7; day++) {
      for (const half of ['AM', 'PM'] as const) {
        const block = blockOf(day, half);
        assign(block, fmitFaculty[w]!, 'primary', FMIT_ROTATION);
        assign(block, fmitPgy1[w]!, 'primary', FMIT_ROTATION);
        assign(block, fmitSenior[w]!, 'primary', FMIT_ROTATION);
      }
    }

    // Inpatient: a core attending with a PGY-1 and a senior on weekday mornings. Kept light on
    // purpose; each team needs one supervisor (ratio 0.5 + 0.25), which the attending is.
    const attending = leastLoaded('inpatient', available(ofRole('core')));
    const inpatientTeam = [
      leastLoaded('inpatient', available(pgy1)),
      leastLoaded('inpatient', available(pgy23)),
    ];
    if (attending) {
      bump('inpatient', attending);
      for (let day = 0; day < 5; day++)
        assign(blockOf(day, 'AM'), attending, 'supervising', INPATIENT_ROTATION);
      for (const resident of inpatientTeam) {
        if (!resident) continue;
        bump('inpatient', resident);
        for (let day = 0; day < 5; day++)
          assign(blockOf(day, 'AM'), resident, 'primary', INPATIENT_ROTATION);
      }
    }

    // Clinic: each faculty member takes exactly their weekly limit, spread so that
    // every weekday half-day has some faculty in clinic.
    const weekdayBlocks: string[] = [];
    for (let day = 0; day < 5; day++) weekdayBlocks.push(blockOf(day, 'AM'), blockOf(day, 'PM'));
    const clinicFaculty = new Map<string, PersonRow[]>(weekdayBlocks.map((b) => [b, []]));
    for (const person of pick.shuffle(available(faculty))) {
      const limit = WEEKLY_CLINIC_LIMIT[person.facultyRole!];
      for (let n = 0; n < limit; n++) {
        const open = weekdayBlocks.filter((b) => isFree(b, person));
        const block = pick.leastBy(open, (b) => clinicFaculty.get(b)!.length);
        if (!block) break;
        assign(block, person, 'supervising', CLINIC_ROTATION);
        clinicFaculty.get(block)!.push(person);
      }
    }

    // Each clinic faculty member precepts at most one PGY-1 and one senior (ratio 0.75),
    // so every block's faculty outnumber what its residents require.
    for (const block of weekdayBlocks) {
      const preceptors = clinicFaculty.get(block)!.length;
      for (let n = 0; n < preceptors; n++) {
        for (const pool of [pgy1, pgy23]) {
          const resident = leastLoaded(
            'clinic',
            available(pool).filter((p) => isFree(block, p)),
          );
          if (!resident) continue;
          bump('clinic', resident);
          assign(block, resident, 'primary', CLINIC_ROTATION);
        }
      }
    }
  });

  // Calls: the FMIT attending holds Friday and Saturday; Sunday to Thursday nights rotate
  // among core faculty who are neither on FMIT nor away that week.
  const calls: CallRow[] = [];
  let lastOnCall: PersonRow | undefined;
  weeks.forEach((monday, w) => {
    for (let day = 0; day < 7; day++) {
      const date = addDays(monday, day);
      const weekend = day === 4 || day === 5;
      const person = weekend
        ? fmitFaculty[w]!
        : leastLoaded(
            'call',
            ofRole('core').filter(
              (p) => !onFmit(w, p) && !isAway(w, p) && !isKeptFree(w, p) && p !== lastOnCall,
            ),
          );
      if (!person) throw new Error(`demo planner found nobody for overnight call on ${date}`);
      bump('call', person);
      calls.push({
        id: randomUUID(),
        date,
        person: person.id,
        callType: weekend ? 'weekend' : 'overnight',
        version: 1,
      });
      lastOnCall = person;
    }
  });

  return { firstDay, lastDay, people, blocks, assignments, calls, absences, swapReady };
}

function makePeople(): PersonRow[] {
  const faculty = DEMO_FACULTY.map(([name, role]): PersonRow => ({
    id: demoPersonId(name),
    name,
    kind: 'faculty',
    pgyLevel: null,
    facultyRole: role,
    version: 1,
  }));
  const residents = DEMO_RESIDENTS_BY_PGY.flatMap(([pgy, names]) =>
    names.map((name): PersonRow => ({
      id: demoPersonId(name),
      name,
      kind: 'resident',
      pgyLevel: pgy,
      facultyRole: null,
      version: 1,
    })),
  );
  return [...faculty, ...residents];
}

/**
 * One person per week, cycling through the pool in a fresh random order each
 * round, so everyone gets an even share and nobody serves two weeks running.
 */
function rotateWithoutRepeats<T>(pool: readonly T[], weeks: number, pick: Picker): T[] {
  const order: T[] = [];
  while (order.length < weeks) {
    const round = pick.shuffle(pool);
    // The only place a repeat could happen is where one round meets the next.
    if (round.length > 1 && round[0] === order.at(-1))
      [round[0], round[1]] = [round[1]!, round[0]!];
    order.push(...round);
  }
  return order.slice(0, weeks);
}

/** First week index from `from` (wrapping round) that starts `span` weeks all passing `ok`. */
function findFreeWeeks(
  total: number,
  span: number,
  from: number,
  ok: (week: number) => boolean,
): number {
  const starts = total - span + 1;
  for (let k = 0; k < starts; k++) {
    const w = (from + k) % starts;
    let fits = true;
    for (let i = w; i < w + span && fits; i++) fits = ok(i);
    if (fits) return w;
  }
  throw new Error('demo planner found no free weeks for an absence');
}

interface Picker {
  one<T>(items: readonly T[]): T;
  shuffle<T>(items: readonly T[]): T[];
  /** The item with the lowest score, ties broken at random; undefined when empty. */
  leastBy<T>(items: readonly T[], score: (item: T) => number): T | undefined;
}

function picker(random: () => number): Picker {
  const index = (n: number) => Math.min(n - 1, Math.floor(random() * n));
  const shuffle = <T>(items: readonly T[]): T[] => {
    const copy = [...items];
    for (let i = copy.length - 1; i > 0; i--) {
      const j = index(i + 1);
      [copy[i], copy[j]] = [copy[j]!, copy[i]!];
    }
    return copy;
  };
  return {
    one: (items) => {
      if (items.length === 0) throw new Error('demo planner picked from an empty pool');
      return items[index(items.length)]!;
    },
    shuffle,
    leastBy: (items, score) => {
      let best: (typeof items)[number] | undefined;
      let bestScore = Infinity;
      for (const item of shuffle(items)) {
        const s = score(item);
        if (s < bestScore) [best, bestScore] = [item, s];
      }
      return best;
    },
  };
}
