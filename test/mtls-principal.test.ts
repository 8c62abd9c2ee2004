import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { SwapType } from '../src/generated/swap/v1/swap';
import {
  clientCredentials,
  createTestPki,
  FRONTEND_SPIFFE_ID,
  type TestPki,
  tlsEnv,
} from './support/certificates';
import { ScheduleFixture } from './support/schedule-fixture';
import { startTestService, type TestService } from './support/test-service';

/**
 * The whole service over mTLS: the caller is the client certificate's SPIFFE
 * ID, and that is who the swap and its audit row name, whatever the caller
 * says of itself.
 */

let pki: TestPki;
let ts: TestService;
let fx: ScheduleFixture;
beforeAll(async () => {
  pki = await createTestPki();
  ts = await startTestService(tlsEnv(pki.server, pki.ca), {
    clientCredentials: clientCredentials(pki.ca, pki.clients.valid),
  });
  fx = await ScheduleFixture.connect(ts.db.url);
});
afterAll(async () => {
  await fx?.close();
  await ts?.close();
  await pki?.remove();
});

it('records the certificate’s SPIFFE ID on the swap and in its audit row', async () => {
  const [a, b] = [await fx.faculty('core'), await fx.faculty('core')];
  await fx.assignWeek(a, '2030-03-04');
  await fx.assignWeek(b, '2030-03-18');
  const requestId = randomUUID();
  const { swap } = await ts.api.executeSwap({
    sourceFacultyId: a,
    sourceWeek: '2030-03-04',
    targetFacultyId: b,
    targetWeek: '2030-03-18',
    swapType: SwapType.SWAP_TYPE_ONE_TO_ONE,
    reason: 'conference',
    requestId,
  });
  expect(swap?.requestedBy).toBe(FRONTEND_SPIFFE_ID);
  expect(swap?.executedBy).toBe(FRONTEND_SPIFFE_ID);
  const { rows } = await fx.db.query<{ principal: string; status: string; swap_ids: string[] }>(
    'select principal, status, swap_ids from audit_event where request_id = $1',
    [requestId],
  );
  expect(rows).toEqual([{ principal: FRONTEND_SPIFFE_ID, status: 'OK', swap_ids: [swap!.id] }]);
});
