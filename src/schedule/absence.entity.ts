import { EntitySchema, type Opt, type Ref } from '@mikro-orm/core';
import type { AbsenceType } from './absence-policy';
import { Person } from './person.entity';

/** A period during which a person is away. */
export class Absence {
  id!: string;
  person!: Ref<Person>;
  /** ISO dates, both inclusive. */
  startDate!: string;
  endDate!: string;
  type!: AbsenceType;
  /** Decided by {@link isBlockingAbsence} when the absence is recorded. */
  blocking!: boolean;
  version!: Opt<number>;
}

export const AbsenceSchema = new EntitySchema<Absence>({
  class: Absence,
  tableName: 'absence',
  indexes: [{ properties: ['person', 'startDate'] }],
  properties: {
    id: { type: 'uuid', primary: true },
    person: { kind: 'm:1', entity: () => Person, ref: true },
    startDate: { type: 'string', columnType: 'date' },
    endDate: { type: 'string', columnType: 'date' },
    type: { type: 'string', columnType: 'text' },
    blocking: { type: 'boolean' },
    version: { type: 'integer', version: true },
  },
});
