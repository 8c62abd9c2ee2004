/** One faculty member's week: the unit that schedule writers lock. */
export interface FacultyWeekKey {
  personId: string;
  /** The Monday that starts the week, as an ISO date. */
  week: string;
}

/** The distributed-lock name of a faculty week; the same week always gets the same name. */
export function lockNameOf(key: FacultyWeekKey): string {
  return `fw:${key.personId}:${key.week}`;
}
