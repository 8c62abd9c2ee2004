import { describe, expect, it } from 'vitest';
import { findDemoSwaps } from '../src/dev/demo-swaps';
import { printQuickStart } from '../src/dev/quick-start';
import { planDemoProgram } from '../src/dev/demo-year-planner';
import { SwapType } from '../src/generated/swap/v1/swap';
import { swapctl } from './support/swapctl-run';
import { type ServiceAndFixture, TODAY, useTestService } from './support/test-service';

// The demo seed promises swaps that work: each swap-ready pair of its plan can
// trade weeks one-to-one, or either can absorb the other's week, and the
// banner's finder names such a swap. The server validates them; nothing here
// re-implements its rules.

describe('the demo seed guarantees valid swaps', () => {
  let started: ServiceAndFixture;
  useTestService((s) => (started = s), { SEED_DEMO: 'true' });

  // The seed plans from the service's clock (TODAY); the plan is the same for the same day.
  const plan = planDemoProgram(TODAY);

  it('keeps three swap-ready pairs of FMIT weeks, three or more weeks ahead', () => {
    expect(plan.swapReady).toHaveLength(3);
    for (const pair of plan.swapReady) expect(pair.aWeek > '2030-01-21').toBe(true);
  });

  it('every one-to-one and absorb swap of those pairs is valid against the seeded database', async () => {
    const { api } = started.ts;
    for (const { a, aWeek, b, bWeek } of plan.swapReady) {
      const swaps = [
        {
          sourceFacultyId: a,
          sourceWeek: aWeek,
          targetFacultyId: b,
          targetWeek: bWeek,
          swapType: SwapType.SWAP_TYPE_ONE_TO_ONE,
        },
        {
          sourceFacultyId: a,
          sourceWeek: aWeek,
          targetFacultyId: b,
          swapType: SwapType.SWAP_TYPE_ABSORB,
        },
        {
          sourceFacultyId: b,
          sourceWeek: bWeek,
          targetFacultyId: a,
          swapType: SwapType.SWAP_TYPE_ABSORB,
        },
      ];
      for (const swap of swaps) {
        const answer = await api.validateSwap({ ...swap, reason: 'demo' });
        expect({ swap, errors: answer.errors, warnings: answer.warnings }).toEqual({
          swap,
          errors: [],
          warnings: [],
        });
        expect(answer.valid).toBe(true);
      }
    }
  });

  it('the banner finds valid one-to-one swaps in the database itself', async () => {
    const found = await findDemoSwaps(started.ts.service.orm.em.fork(), TODAY, 5);
    expect(found.length).toBeGreaterThanOrEqual(3);
    for (const s of found) {
      const answer = await started.ts.api.validateSwap({
        ...s,
        swapType: SwapType.SWAP_TYPE_ONE_TO_ONE,
        reason: 'demo',
      });
      expect({ s, errors: answer.errors }).toEqual({ s, errors: [] });
    }
  });

  it('the start-up banner prints swapctl lines that run as printed', async () => {
    const [swap] = await findDemoSwaps(started.ts.service.orm.em.fork(), TODAY, 1);
    let banner = '';
    printQuickStart(started.ts.service.port, swap, (text) => (banner += text));
    const lines = banner
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line.startsWith('npx swapctl'));
    expect(lines.map((line) => line.split(' ').slice(4, 6).join(' '))).toEqual([
      'health',
      'faculty list',
      'schedule show',
      'swaps validate',
      'swaps execute',
    ]);
    expect(banner).toContain(`--source-week ${swap!.sourceWeek}`);
    for (const line of lines) {
      // `npx swapctl --addr localhost:<port> …`: the same words, in this process.
      const [, , addr, address, ...args] = line.split(' ');
      expect(addr).toBe('--addr');
      const run = await swapctl(address!, ...args);
      expect({ line, code: run.code, stderr: run.stderr }).toMatchObject({ line, code: 0 });
    }
  });
});
