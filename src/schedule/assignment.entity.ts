import { EntitySchema, type Opt, type Ref } from '@mikro-orm/core';
import { Block } from './block.entity';
import { Person } from './person.entity';

export const ASSIGNMENT_ROLES = ['primary', 'supervising', 'backup'] as const;
export type AssignmentRole = (typeof ASSIGNMENT_ROLES)[number];

/** The rotation that marks a faculty member's inpatient teaching-service week. */
export const FMIT_ROTATION = 'FMIT';
export const CLINIC_ROTATION = 'clinic';

/** A person working one block, in a role, on a rotation. */
export class Assignment {
  id!: string;
  block!: Ref<Block>;
  person!: Ref<Person>;
  role!: AssignmentRole;
  /** For example FMIT, clinic, inpatient. */
  rotation!: string;
  version!: Opt<number>;
}

export const AssignmentSchema = new EntitySchema<Assignment>({
  class: Assignment,
  tableName: 'assignment',
  uniques: [{ properties: ['block', 'person'] }],
  indexes: [{ properties: ['person', 'block'] }],
  properties: {
    id: { type: 'uuid', primary: true },
    block: { kind: 'm:1', entity: () => Block, ref: true },
    person: { kind: 'm:1', entity: () => Person, ref: true },
    role: { type: 'string', columnType: 'text' },
    rotation: { type: 'string', columnType: 'text' },
    version: { type: 'integer', version: true },
  },
});
