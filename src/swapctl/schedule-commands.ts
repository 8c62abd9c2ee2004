import type { Command } from 'commander';
import {
  GetFacultyScheduleResponse,
  ListFacultyResponse,
  type ScheduleDay,
} from '../generated/swap/v1/schedule';
import type { CommandRunner } from './command-runner';
import { call } from './connection';
import { integerFlag, optionalWeekFlag, uuidFlag } from './flags';
import { table } from './output';

const DAY_NAMES = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'];

/** `swapctl faculty list` and `swapctl schedule show`. */
export function registerScheduleCommands(program: Command, runner: CommandRunner): void {
  runner.bind(
    program
      .command('faculty')
      .description('the faculty')
      .command('list')
      .description('every faculty member, with their next FMIT weeks')
      .option('--from <monday>', 'list FMIT weeks from this week (default: this week)'),
    async ({ connection, output, options: o }) => {
      const response = await call(
        connection,
        connection.schedule.listFaculty.bind(connection.schedule),
        {
          weekFrom: optionalWeekFlag('--from', o.from as string | undefined),
        },
      );
      output.result(ListFacultyResponse.toJSON(response), () =>
        table(
          ['id', 'name', 'role', 'next FMIT weeks'],
          response.faculty.map((f) => [f.id, f.name, f.role, f.fmitWeeks.join(' ')]),
        ),
      );
    },
  );

  runner.bind(
    program
      .command('schedule')
      .description("a faculty member's schedule")
      .command('show')
      .description('week by week: AM/PM rotation, +call, [absence] (! blocks swaps)')
      .argument('<faculty-id>')
      .option('--from <monday>', 'first week (default: this week)')
      .option('--weeks <n>', 'how many weeks, 1 to 26', '4'),
    async ({ connection, output, options: o }, [facultyId]) => {
      const response = await call(
        connection,
        connection.schedule.getFacultySchedule.bind(connection.schedule),
        {
          facultyId: uuidFlag('<faculty-id>', facultyId!),
          weekFrom: optionalWeekFlag('--from', o.from as string | undefined),
          weeks: integerFlag('--weeks', o.weeks as string, 1, 26),
        },
      );
      output.result(GetFacultyScheduleResponse.toJSON(response), () => {
        const f = response.faculty!;
        return [
          `${f.name} (${f.role}) ${f.id}`,
          table(
            ['week', ...DAY_NAMES],
            response.weeks.map((w) => [w.week, ...w.days.map(cell)]),
          ),
        ].join('\n');
      });
    },
  );
}

/** One day as a cell: `FMIT`, `clinic/-`, `- +overnight`, `[vacation]`, `[tdy!]`. */
function cell(day: ScheduleDay): string {
  const work = day.am === day.pm ? day.am || '-' : `${day.am || '-'}/${day.pm || '-'}`;
  const parts = [work];
  if (day.call) parts.push(`+${day.call}`);
  if (day.absence) parts.push(`[${day.absence}${day.absenceBlocking ? '!' : ''}]`);
  return parts.join(' ');
}
