import { ConflictAlertSchema } from '../conflicts/conflict-alert.entity';
import { AbsenceSchema } from '../schedule/absence.entity';
import { AssignmentSchema } from '../schedule/assignment.entity';
import { BlockSchema } from '../schedule/block.entity';
import { CallAssignmentSchema } from '../schedule/call-assignment.entity';
import { FacultyWeekSchema } from '../schedule/faculty-week.entity';
import { PersonSchema } from '../schedule/person.entity';
import { SwapRecordSchema } from '../swaps/swap-record.entity';

/** Every entity the ORM maps; the one list that discovery and migrations share. */
export const ENTITIES = [
  PersonSchema,
  BlockSchema,
  AssignmentSchema,
  CallAssignmentSchema,
  AbsenceSchema,
  FacultyWeekSchema,
  SwapRecordSchema,
  ConflictAlertSchema,
];
