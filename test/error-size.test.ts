import { randomUUID } from 'node:crypto';
import { credentials, type ServiceError, status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { ErrorInfo, PreconditionFailure } from '../src/generated/google/rpc/error_details';
import { Status } from '../src/generated/google/rpc/status';
import { failure } from './support/grpc-outcomes';
import type { ScheduleFixture } from './support/schedule-fixture';
import { fmitSwapPair } from './support/swap-pair';
import { swapClientOf, type TestService, useTestService } from './support/test-service';

/**
 * Error answers travel in HTTP/2 trailers, and gRPC core, Java and Go clients
 * accept at most 8 KiB of them by default. Every error must fit, however many
 * rules it reports and whatever the caller sent.
 */

let ts: TestService;
let fx: ScheduleFixture;
useTestService((started) => ({ ts, fx } = started));

const DEFAULT_CLIENT_LIMIT = 8192;

/** The bytes the error's trailers take on the wire (HPACK counts 32 more per entry). */
function trailerBytes(error: ServiceError): number {
  const message = encodeURIComponent(error.details).length; // grpc-message is percent-encoded
  const details = error.metadata.get('grpc-status-details-bin')[0] as Buffer;
  return (
    'grpc-status'.length +
    2 +
    32 +
    'grpc-message'.length +
    message +
    32 +
    'grpc-status-details-bin'.length +
    details.toString('base64').length +
    32
  );
}

function statusOf(error: ServiceError) {
  const raw = error.metadata.get('grpc-status-details-bin')[0] as Buffer;
  const decoded = Status.decode(raw);
  const info = decoded.details.find((d) => d.typeUrl.endsWith('ErrorInfo'));
  const failure = decoded.details.find((d) => d.typeUrl.endsWith('PreconditionFailure'));
  return {
    info: info && ErrorInfo.decode(info.value),
    violations: failure ? PreconditionFailure.decode(failure.value).violations : [],
  };
}

describe('error size', () => {
  it('RollbackSwap refused SCHEDULE_CHANGED over 28 rows fits a client with the default 8 KiB metadata limit', async () => {
    const pair = await fmitSwapPair(fx, {
      sourceWeek: '2030-02-04',
      targetWeek: '2030-02-18',
      reason: 'rows that change after the swap',
    });
    const swap = (await ts.api.executeSwap(pair.request())).swap!;
    const moved = swap.movedAssignments.map((m) => m.assignmentId);
    expect(moved.length).toBe(28);
    // Someone edits every row the swap moved, so none may be rolled back.
    await fx.db.query('update assignment set version = version + 1 where id = any($1)', [moved]);

    const { client, api } = swapClientOf(ts, credentials.createInsecure(), {
      'grpc.max_metadata_size': DEFAULT_CLIENT_LIMIT,
    });
    try {
      const error = await failure(
        api.rollbackSwap({ swapId: swap.id, reason: 'undo', requestId: randomUUID() }),
      );
      expect(error.code, `${status[error.code]} ${error.details}`).toBe(status.FAILED_PRECONDITION);
      expect(trailerBytes(error)).toBeLessThan(DEFAULT_CLIENT_LIMIT);
      const { info, violations } = statusOf(error);
      expect(info?.reason).toBe('SCHEDULE_CHANGED');
      expect(info?.metadata).toMatchObject({ violations_total: '28', violations_listed: '10' });
      expect(violations).toHaveLength(10);
      expect(violations.every((v) => v.type === 'SCHEDULE_CHANGED')).toBe(true);
      expect(error.details).toMatch(/^28 rules broken/);
    } finally {
      client.close();
    }
  });

  it('a huge option_id is refused with a small answer', async () => {
    const error = await failure(
      ts.conflicts.resolveConflict({
        conflictId: randomUUID(),
        optionId: '€'.repeat(200_000),
        requestId: randomUUID(),
      }),
    );
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(trailerBytes(error)).toBeLessThan(1024);
  });
});
