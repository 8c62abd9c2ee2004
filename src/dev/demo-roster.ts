/**
 * Who the demo program's people are. Kept apart from the planner so the cast can
 * change without touching how the year is planned; the order matters, because the
 * planner draws from a seeded PRNG and the same order gives the same schedule.
 */
import type { FacultyRole } from '../schedule/person.entity';

/**
 * The demo faculty, by name and role: one of each leadership role, six core,
 * a sports medicine physician and an adjunct.
 */
export const DEMO_FACULTY: ReadonlyArray<readonly [string, FacultyRole]> = [
  ['Margaret Okafor', 'pd'],
  ['Daniel Reyes', 'apd'],
  ['Priya Raman', 'oic'],
  ['Thomas Whitfield', 'dept_chief'],
  ["Kevin O'Brien", 'sports_med'],
  ['Laura Chen', 'core'],
  ['Marcus Bell', 'core'],
  ['Sofia Delgado', 'core'],
  ['Nathan Price', 'core'],
  ['Aisha Kamara', 'core'],
  ['Erik Lindqvist', 'core'],
  ['Ruth Abernathy', 'adjunct'],
];

/** The demo residents, eight per postgraduate year. */
export const DEMO_RESIDENTS_BY_PGY: ReadonlyArray<readonly [number, readonly string[]]> = [
  [
    1,
    [
      'Jordan Ellis',
      'Maya Patel',
      'Samuel Ortiz',
      'Hannah Brooks',
      'Ethan Nguyen',
      'Olivia Grant',
      'Lucas Moreau',
      'Chloe Adeyemi',
    ],
  ],
  [
    2,
    [
      'Noah Fischer',
      'Grace Liu',
      'Caleb Mercer',
      'Zoe Ramirez',
      'Isaac Boateng',
      'Leah Novak',
      'Owen Sato',
      'Ava Kowalski',
    ],
  ],
  [
    3,
    [
      'Gabriel Silva',
      'Emma Thornton',
      'Julian Hayes',
      'Nora Haddad',
      'Miles Carter',
      'Isabel Romero',
      'Wyatt Jensen',
      'Lily Park',
    ],
  ],
];
