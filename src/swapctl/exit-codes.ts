import { status } from '@grpc/grpc-js';

/**
 * swapctl's exit codes. A call that ends in a gRPC status other than OK exits
 * 10 + the status's number, so scripts can tell a refusal (FAILED_PRECONDITION,
 * 19) from a retryable one (ABORTED 20, UNAVAILABLE 24) without parsing text.
 */
export const EXIT = {
  ok: 0,
  /** swapctl itself failed (not a gRPC status): a bug, or a response it could not read. */
  failed: 1,
  /** Bad flags or arguments, or a file named by a flag cannot be read; nothing was called. */
  usage: 2,
  /** `swapctl load` ran, but found no successful call or the schedule changed. */
  loadCheckFailed: 3,
} as const;

/** The exit code of a call that ended with gRPC status `code`. */
export function exitCodeOfStatus(code: status): number {
  return code === status.OK ? EXIT.ok : 10 + code;
}

/** Every gRPC status name and its exit code, for `swapctl --help` and the README. */
export function exitCodeTable(): Array<[string, number]> {
  return Object.entries(status)
    .filter((entry): entry is [string, number] => typeof entry[1] === 'number')
    .map(([name, code]) => [name, exitCodeOfStatus(code)]);
}
