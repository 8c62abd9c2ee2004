import { EntitySchema, type Opt, type Ref } from '@mikro-orm/core';
import { Person } from './person.entity';

export const CALL_TYPES = ['overnight', 'weekend', 'backup'] as const;
export type CallType = (typeof CALL_TYPES)[number];

/** A person on call for one date. */
export class CallAssignment {
  id!: string;
  /** ISO date, YYYY-MM-DD. */
  date!: string;
  person!: Ref<Person>;
  callType!: CallType;
  version!: Opt<number>;
}

export const CallAssignmentSchema = new EntitySchema<CallAssignment>({
  class: CallAssignment,
  tableName: 'call_assignment',
  indexes: [{ properties: ['person', 'date'] }, { properties: ['date'] }],
  properties: {
    id: { type: 'uuid', primary: true },
    date: { type: 'string', columnType: 'date' },
    person: { kind: 'm:1', entity: () => Person, ref: true },
    callType: { type: 'string', columnType: 'text' },
    version: { type: 'integer', version: true },
  },
});
