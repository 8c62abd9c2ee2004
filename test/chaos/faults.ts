import { setTimeout as sleep } from 'node:timers/promises';
import type { ChaosDatabase } from './chaos-database';
import type { ChaosSchedule } from './chaos-schedule';
import type { FaultProxy } from './fault-proxy';
import type { HistoryWriter } from './history';
import type { RedisInstance } from './redis-instance';
import type { Replica } from './replica';

/** Every kind of fault, each injected on a timer of its own. */
export const FAULT_KINDS = [
  'replica-kill',
  'pg-terminate-backend',
  'pg-restart',
  'redis-pause',
  'redis-kill',
  'proxy-partition',
  'proxy-latency',
  'proxy-drop',
  'lock-stall',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** What the faults act on. */
export interface FaultTargets {
  database: ChaosDatabase;
  redis: RedisInstance;
  replicas: readonly Replica[];
  /** Per replica: its proxy to PostgreSQL and its proxy to Redis. */
  proxies: readonly { pg: FaultProxy; redis: FaultProxy }[];
  schedule: ChaosSchedule;
  lockTtlMs: number;
}

/**
 * Injects `perKind` faults of every kind over `durationMs`, each kind on its
 * own timer (so kinds overlap, as real failures do), one fault of a kind at a
 * time. Each fault is recorded with its start and end; one that could not be
 * injected (its target was down because of another fault) is recorded with
 * its error and not counted.
 */
export class FaultInjector {
  private readonly counts = new Map<FaultKind, number>();
  private readonly failed = new Map<FaultKind, number>();
  /** Replicas down or cut off now: a replica takes one such fault at a time, and one replica is always left alone. */
  private readonly replicasBusy = new Set<number>();

  constructor(
    private readonly targets: FaultTargets,
    private readonly history: HistoryWriter,
    private readonly t0: number,
  ) {}

  async run(durationMs: number, perKind: number, stopped: () => boolean): Promise<void> {
    const interval = durationMs / perKind;
    await Promise.all(
      FAULT_KINDS.map(async (kind, k) => {
        // Kinds start staggered over the first half of an interval, so the first second is not every fault at once.
        await sleep((interval * 0.5 * k) / FAULT_KINDS.length);
        while (!stopped() && (this.counts.get(kind) ?? 0) < perKind) {
          const began = Date.now();
          if (!(await this.inject(kind))) continue;
          const rest = interval * (0.5 + Math.random()) - (Date.now() - began);
          if (rest > 0)
            await sleep(Math.min(rest, Math.max(0, durationMs - (Date.now() - this.t0))));
        }
      }),
    );
  }

  /** Faults injected, and faults that could not be, by kind. */
  figures(): { injected: Record<string, number>; failed: Record<string, number> } {
    return {
      injected: Object.fromEntries(FAULT_KINDS.map((k) => [k, this.counts.get(k) ?? 0])),
      failed: Object.fromEntries([...this.failed]),
    };
  }

  /**
   * Resolves to false when the fault was skipped or could not be injected
   * (its target was down because of another fault): it is tried again soon.
   */
  private async inject(kind: FaultKind): Promise<boolean> {
    const start = Date.now() - this.t0;
    let target = '';
    try {
      target = await this.act(kind);
      if (target === '') return false;
      this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1);
      this.history.write({ kind: 'fault', fault: kind, target, start, end: Date.now() - this.t0 });
    } catch (error) {
      this.failed.set(kind, (this.failed.get(kind) ?? 0) + 1);
      this.history.write({
        kind: 'fault',
        fault: kind,
        target,
        start,
        end: Date.now() - this.t0,
        error: (error as Error).message,
      });
      await sleep(1000);
      return false;
    }
    return true;
  }

  /** Carries out one fault; resolves to what it hit, or '' when it had to be skipped for now. */
  private async act(kind: FaultKind): Promise<string> {
    const { database, redis, replicas, proxies, schedule, lockTtlMs } = this.targets;
    const r = Math.floor(Math.random() * replicas.length);
    switch (kind) {
      case 'replica-kill':
        return this.withReplica(r, async () => {
          await replicas[r]!.kill();
          await sleep(100 + Math.random() * 400);
          await replicas[r]!.restart();
          return `replica ${r}`;
        });
      case 'proxy-partition':
        return this.withReplica(r, async () => {
          proxies[r]!.pg.partition();
          proxies[r]!.redis.partition();
          await sleep(2000 + Math.random() * 2000);
          proxies[r]!.pg.heal();
          proxies[r]!.redis.heal();
          return `replica ${r}`;
        });
      case 'pg-terminate-backend':
        return `${await database.terminateBackends(1 + Math.floor(Math.random() * 4))} sessions`;
      case 'pg-restart':
        await database.restart(200 + Math.random() * 800);
        return 'postgresql';
      case 'redis-pause': {
        const ms = lockTtlMs + 500 + Math.floor(Math.random() * 1000);
        await redis.pause(ms);
        return `${ms} ms`;
      }
      case 'redis-kill':
        await redis.killAndRestart(300 + Math.random() * 1200);
        return 'redis';
      case 'proxy-latency': {
        const ms = 20 + Math.floor(Math.random() * 180);
        const which = Math.random() < 0.5 ? 'pg' : 'redis';
        proxies[r]![which].setLatency(ms);
        await sleep(2000 + Math.random() * 2000);
        proxies[r]![which].setLatency(0);
        return `replica ${r} ${which} +${ms} ms`;
      }
      case 'proxy-drop': {
        const which = Math.random() < 0.5 ? 'pg' : 'redis';
        proxies[r]![which].dropConnections();
        return `replica ${r} ${which}`;
      }
      case 'lock-stall': {
        const group = schedule.groups[Math.floor(Math.random() * schedule.groups.length)]!;
        const week = Math.random() < 0.5 ? 0 : 1;
        const ms = 1500 + Math.floor(Math.random() * 2500);
        await database.holdRowLocks(group.assignmentIds[week], ms);
        return `group ${group.index} week ${week + 1} for ${ms} ms`;
      }
    }
  }

  private async withReplica(r: number, work: () => Promise<string>): Promise<string> {
    if (this.replicasBusy.has(r) || this.replicasBusy.size + 1 >= this.targets.replicas.length) {
      await sleep(200);
      return '';
    }
    this.replicasBusy.add(r);
    try {
      return await work();
    } finally {
      this.replicasBusy.delete(r);
    }
  }
}
