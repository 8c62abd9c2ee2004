import { randomUUID } from 'node:crypto';
import type { Swap } from '../generated/swap/v1/swap';
import { call, type Connection } from './connection';
import type { Operation } from './load-generator';
import type { SwapCandidate } from './load-workload';

interface Slot {
  candidate: SwapCandidate;
  /** The executed swap, until it is rolled back. */
  swapId: string | undefined;
  /** A call in flight on this slot; nothing else may start on it. */
  busy: boolean;
  /**
   * The request_id of the next execute or rollback. Kept after a failure, so a
   * call that may have committed (a deadline, say) is retried as itself and
   * replays instead of running twice.
   */
  requestId: string;
}

/**
 * Executes each candidate swap and then rolls it back, in turn, so the
 * schedule keeps coming back to where it started. Candidates touch disjoint
 * faculty weeks, so no two slots interfere.
 */
export class SwapCycle {
  private readonly slots: Slot[];
  private cursor = 0;

  constructor(
    private readonly connection: Connection,
    candidates: SwapCandidate[],
  ) {
    this.slots = candidates.map((candidate) => ({
      candidate,
      swapId: undefined,
      busy: false,
      requestId: randomUUID(),
    }));
  }

  /** The next execute or rollback on a free slot, or undefined when every slot is busy. */
  nextMutation(): Operation | undefined {
    for (let n = 0; n < this.slots.length; n++) {
      const slot = this.slots[(this.cursor + n) % this.slots.length]!;
      if (slot.busy) continue;
      this.cursor = (this.cursor + n + 1) % this.slots.length;
      return slot.swapId === undefined ? this.execute(slot) : this.rollback(slot);
    }
    return undefined;
  }

  /** A candidate for a validate call (any, busy or not: validation changes nothing). */
  anyCandidate(): SwapCandidate | undefined {
    return this.slots[Math.floor(Math.random() * this.slots.length)]?.candidate;
  }

  /** Swaps executed and not yet rolled back. */
  outstanding(): number {
    return this.slots.filter((s) => s.swapId !== undefined).length;
  }

  /**
   * After the run: rolls back what is still executed, retrying each failed
   * call with its own request_id; resolves to the swaps it could not roll back.
   */
  async restore(attempts = 5): Promise<string[]> {
    for (let attempt = 0; attempt < attempts; attempt++) {
      const open = this.slots.filter((s) => s.swapId !== undefined);
      if (open.length === 0) return [];
      await Promise.all(
        open.map((slot) =>
          this.rollback(slot)
            .run()
            .catch(() => undefined),
        ),
      );
    }
    return this.slots.filter((s) => s.swapId !== undefined).map((s) => s.swapId!);
  }

  private execute(slot: Slot): Operation {
    return this.guarded(slot, 'ExecuteSwap', async () => {
      const { swap } = await call(
        this.connection,
        this.connection.swaps.executeSwap.bind(this.connection.swaps),
        {
          ...slot.candidate,
          reason: 'swapctl load',
          requestId: slot.requestId,
        },
      );
      slot.swapId = (swap as Swap).id;
    });
  }

  private rollback(slot: Slot): Operation {
    return this.guarded(slot, 'RollbackSwap', async () => {
      await call(this.connection, this.connection.swaps.rollbackSwap.bind(this.connection.swaps), {
        swapId: slot.swapId!,
        reason: 'swapctl load: restoring the schedule',
        requestId: slot.requestId,
      });
      slot.swapId = undefined;
    });
  }

  private guarded(slot: Slot, method: string, work: () => Promise<void>): Operation {
    slot.busy = true;
    let started = false;
    return {
      method,
      run: async () => {
        if (started) throw new Error(`${method} operation run twice`);
        started = true;
        try {
          await work();
          slot.requestId = randomUUID();
        } finally {
          slot.busy = false;
        }
      },
    };
  }
}
