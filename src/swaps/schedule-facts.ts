import type { AssignmentRole } from '../schedule/assignment.entity';
import type { CallType } from '../schedule/call-assignment.entity';
import type { FacultyRole, PersonKind } from '../schedule/person.entity';

/**
 * The read-only slice of the schedule that swap rules judge. It is loaded inside
 * the swap's transaction, after the faculty-week locks, so it cannot go stale
 * before commit.
 */
export interface ScheduleFacts {
  /** The two faculty members named by the request; a missing id is absent. */
  people: ReadonlyMap<string, PersonFacts>;
  /** Every assignment of the swapping faculty in the weeks around both swapped weeks. */
  facultyAssignments: readonly AssignmentFact[];
  /** Every assignment in the blocks whose work moves, with who holds it. */
  affectedBlockRosters: readonly AssignmentFact[];
  /** Blocking absences of the swapping faculty that overlap the swapped weeks. */
  blockingAbsences: readonly AbsenceFact[];
  /** The givers' calls on the cascading days of the weeks they give, which move with them; by id. */
  cascadingCalls: readonly CallFact[];
}

export interface PersonFacts {
  id: string;
  kind: PersonKind;
  facultyRole: FacultyRole | null;
  pgyLevel: number | null;
}

export interface AssignmentFact {
  id: string;
  blockId: string;
  blockDate: string;
  blockHalf: string;
  personId: string;
  personKind: PersonKind;
  pgyLevel: number | null;
  role: AssignmentRole;
  rotation: string;
  /** As read under the faculty-week locks; a move checks it is still the row's version. */
  version: number;
}

export interface CallFact {
  id: string;
  date: string;
  personId: string;
  callType: CallType;
  /** As read under the faculty-week locks; a move checks it is still the row's version. */
  version: number;
}

export interface AbsenceFact {
  personId: string;
  startDate: string;
  endDate: string;
  type: string;
}
