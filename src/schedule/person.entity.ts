import { EntitySchema, type Opt } from '@mikro-orm/core';

export const PERSON_KINDS = ['faculty', 'resident'] as const;
export type PersonKind = (typeof PERSON_KINDS)[number];

export const FACULTY_ROLES = [
  'pd',
  'apd',
  'oic',
  'dept_chief',
  'sports_med',
  'core',
  'adjunct',
] as const;
export type FacultyRole = (typeof FACULTY_ROLES)[number];

/** A faculty member or a resident of the program. */
export class Person {
  id!: string;
  name!: string;
  kind!: PersonKind;
  /** Post-graduate year (1–3) for residents; null for faculty. */
  pgyLevel!: number | null;
  /** Null for residents. */
  facultyRole!: FacultyRole | null;
  version!: Opt<number>;
}

export const PersonSchema = new EntitySchema<Person>({
  class: Person,
  tableName: 'person',
  properties: {
    id: { type: 'uuid', primary: true },
    name: { type: 'string' },
    kind: { type: 'string', columnType: 'text' },
    pgyLevel: { type: 'integer', nullable: true },
    facultyRole: { type: 'string', columnType: 'text', nullable: true },
    version: { type: 'integer', version: true },
  },
});
