import { EntitySchema, type Opt, type Ref } from '@mikro-orm/core';
import { Person } from './person.entity';

/**
 * The unit of schedule ownership that writers serialize on: one faculty member's
 * week. Every write that changes or validates a faculty member's week locks this
 * row first, so rules that read several rows of that week (double booking, clinic
 * limits, back-to-back FMIT) cannot be defeated by a concurrent writer (write skew).
 * The row also keeps the highest fencing token that has written the week, and
 * which lock grant it came from.
 */
export class FacultyWeek {
  id!: string;
  person!: Ref<Person>;
  /** The Monday of the week. */
  weekStart!: string;
  /** Highest lock fencing token that wrote this week; null before any fenced write. */
  fencingToken!: string | null;
  /** The lock grant (its random owner token) that recorded `fencingToken`; tells tied tokens apart. */
  fencingOwner!: string | null;
  version!: Opt<number>;
}

export const FacultyWeekSchema = new EntitySchema<FacultyWeek>({
  class: FacultyWeek,
  tableName: 'faculty_week',
  uniques: [{ properties: ['person', 'weekStart'] }],
  properties: {
    id: { type: 'uuid', primary: true },
    person: { kind: 'm:1', entity: () => Person, ref: true },
    weekStart: { type: 'string', columnType: 'date' },
    fencingToken: { type: 'bigint', nullable: true },
    fencingOwner: { type: 'text', nullable: true },
    version: { type: 'integer', version: true },
  },
});
