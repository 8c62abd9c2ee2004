import type { ScheduleServiceServer } from '../generated/swap/v1/schedule';
import type { ScheduleQueries } from '../schedule/schedule-queries';
import { optionalWeek, requireUuid } from './request-fields';
import { type HandlerDeps, unary } from './unary-handler';

/** The use case behind ScheduleService. */
export interface ScheduleUseCases {
  queries: ScheduleQueries;
}

/** The ScheduleService RPCs: read-only, each parses its request and calls the queries. */
export function scheduleHandlers(
  useCases: ScheduleUseCases,
  deps: Pick<HandlerDeps, 'contexts' | 'log'>,
): ScheduleServiceServer {
  const { queries } = useCases;
  return {
    listFaculty: unary(deps, async (request, ctx) => ({
      faculty: await queries.listFaculty(optionalWeek('week_from', request.weekFrom), ctx),
    })),
    getFacultySchedule: unary(deps, async (request, ctx) => {
      const facultyId = requireUuid('faculty_id', request.facultyId);
      const weekFrom = optionalWeek('week_from', request.weekFrom);
      return queries.facultySchedule(facultyId, weekFrom, request.weeks, ctx);
    }),
  };
}
