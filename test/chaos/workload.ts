import { createHash, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { addDays } from '../../src/domain/calendar';
import {
  AcknowledgeConflictRequest,
  AcknowledgeConflictResponse,
  AutoResolveRequest,
  AutoResolveResponse,
  autoResolveOutcomeToJSON,
  type Conflict,
  ConflictStatus,
  conflictStatusToJSON,
  ConflictType,
  DetectConflictsRequest,
  DetectConflictsResponse,
  GetConflictRequest,
  GetResolutionOptionsRequest,
  GetResolutionOptionsResponse,
  IgnoreConflictRequest,
  IgnoreConflictResponse,
  ListConflictsRequest,
  ListConflictsResponse,
  ResolutionStrategy,
  ResolveConflictRequest,
  ResolveConflictResponse,
  RiskLevel,
} from '../../src/generated/swap/v1/conflict';
import {
  ExecuteSwapRequest,
  ExecuteSwapResponse,
  GetSwapRequest,
  ListSwapsRequest,
  RollbackSwapRequest,
  RollbackSwapResponse,
  type Swap,
  swapStatusToJSON,
  SwapType,
  ValidateSwapRequest,
} from '../../src/generated/swap/v1/swap';
import type { ChaosClient } from './chaos-client';
import type { ChaosSchedule } from './chaos-schedule';
import { isDefinite, REASON_PREFIX } from './checker';
import type { Effect, HistoryWriter } from './history';
import { movesDigest } from './moves-digest';

/** One logical call; its attempts share the request (and so the request_id). */
interface Operation {
  opId: number;
  method: string;
  requestId: string | null;
  json: unknown;
  bytes: Uint8Array;
  /** What an OK answer committed, for the history. */
  effect?: (bytes: Buffer) => Effect;
  /** What the workload learns from an OK answer. */
  learn?: (bytes: Buffer) => void;
  /** What it learns from a refusal (its ErrorInfo reason). */
  refused?: (reason: string) => void;
}

interface Codec<T> {
  encode(message: T): { finish(): Uint8Array };
  toJSON(message: T): unknown;
  fromPartial(object: never): T;
}

const MUTATION_DEADLINE_MS = 6_000;
const READ_DEADLINE_MS = 5_000;
/** Resolutions plan over every candidate first, which takes seconds on a loaded machine. */
const RESOLUTION_DEADLINE_MS = 10_000;
const RESOLUTION_METHODS = new Set(['ResolveConflict', 'AutoResolve', 'GetResolutionOptions']);
/** Attempts of one call while faults run; what is still uncertain after them waits for the settle phase. */
const ATTEMPTS_DURING_FAULTS = 6;
const SETTLE_CONCURRENCY = 8;
/**
 * A share of mutations is delivered twice at once, to two replicas; more of the
 * resolutions, whose answers depend most on what the server chose.
 */
const DUPLICATE_SHARE = 0.08;
const RESOLUTION_DUPLICATE_SHARE = 0.25;
/**
 * A share of committed mutations is delivered once more afterwards, to another
 * replica, as a client that lost the reply would: it must get the same bytes.
 */
const REDELIVERY_SHARE = 0.1;
const RESOLUTION_REDELIVERY_SHARE = 0.3;
/** Rollbacks that pick a resolution's swap, so its conflict comes back to be resolved again. */
const RESOLUTION_ROLLBACK_SHARE = 0.4;

const WEIGHTS: [string, number][] = [
  ['ExecuteSwap', 24],
  ['RollbackSwap', 8],
  ['ValidateSwap', 12],
  ['GetSwap', 9],
  ['ListSwaps', 7],
  ['DetectConflicts', 4],
  ['ListConflicts', 6],
  ['GetConflict', 4],
  ['GetResolutionOptions', 4],
  ['AcknowledgeConflict', 4],
  ['IgnoreConflict', 1],
  ['ResolveConflict', 7],
  ['AutoResolve', 4],
];
const TOTAL_WEIGHT = WEIGHTS.reduce((sum, [, w]) => sum + w, 0);

/** Figures of the run, by method and status. */
export interface WorkloadFigures {
  operations: number;
  attempts: number;
  byMethodStatus: Record<string, number>;
  unsettled: number;
}

/**
 * Many concurrent clients that execute, absorb, roll back and validate swaps,
 * read them back, and detect, triage and resolve conflicts, across every
 * replica. An uncertain outcome (UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED, a
 * broken connection…) is tried again with the same request on another
 * replica; calls still uncertain when the faults stop are settled afterwards.
 * Every attempt goes to the history.
 */
export class Workload {
  private nextOpId = 1;
  private operations = 0;
  private attempts = 0;
  private readonly byMethodStatus = new Map<string, number>();
  private readonly unsettled: Operation[] = [];
  /** Who the workload believes holds each group week (learned from answers; may be stale). */
  private readonly holders = new Map<string, string>();
  private readonly groupOfWeek = new Map<string, number>();
  private readonly swaps: string[] = [];
  private readonly resolutionSwaps: string[] = [];
  private readonly conflicts = new Map<string, { type: ConflictType; status: ConflictStatus }>();
  /** An option each conflict was offered that needs no human, for ResolveConflict by option_id. */
  private readonly options = new Map<string, string>();

  constructor(
    private readonly clients: readonly ChaosClient[],
    private readonly schedule: ChaosSchedule,
    private readonly history: HistoryWriter,
    private readonly t0: number,
  ) {
    for (const group of schedule.groups) {
      group.weeks.forEach((week, w) => {
        this.holders.set(week, group.faculty[w]!);
        this.groupOfWeek.set(week, group.index);
      });
    }
  }

  /** Runs `concurrency` client loops until `stopped()` holds. */
  async run(concurrency: number, stopped: () => boolean): Promise<void> {
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (!stopped()) await this.one();
      }),
    );
  }

  /**
   * Tries every call still uncertain again, on healthy replicas, until it is
   * answered or `deadline`: a few at a time, backing off, so the retries do not
   * themselves become the overload that keeps them from being answered.
   */
  async settle(deadline: number): Promise<void> {
    const pending = this.unsettled.splice(0);
    await Promise.all(
      Array.from({ length: SETTLE_CONCURRENCY }, async () => {
        for (let op = pending.shift(); op; op = pending.shift()) {
          for (let pause = 500; Date.now() < deadline; pause = Math.min(pause * 2, 4000)) {
            if (await this.perform(op, 1, true)) break;
            await sleep(pause);
          }
        }
      }),
    );
  }

  figures(): WorkloadFigures {
    return {
      operations: this.operations,
      attempts: this.attempts,
      byMethodStatus: Object.fromEntries([...this.byMethodStatus].sort()),
      unsettled: this.unsettled.length,
    };
  }

  private async one(): Promise<void> {
    let pick = Math.random() * TOTAL_WEIGHT;
    const method = WEIGHTS.find(([, w]) => (pick -= w) < 0)?.[0] ?? 'GetSwap';
    const op = this.build(method);
    if (!op) return;
    this.operations++;
    await this.perform(op, ATTEMPTS_DURING_FAULTS, false);
  }

  /** Sends `op` until a definite answer or `maxAttempts`; resolves to whether it was answered. */
  private async perform(op: Operation, maxAttempts: number, settling: boolean): Promise<boolean> {
    let replica = Math.floor(Math.random() * this.clients.length);
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      const duplicate =
        op.requestId !== null &&
        attempt === 1 &&
        !settling &&
        Math.random() <
          (op.method === 'ResolveConflict' || op.method === 'AutoResolve'
            ? RESOLUTION_DUPLICATE_SHARE
            : DUPLICATE_SHARE);
      const targets = duplicate ? [replica, (replica + 1) % this.clients.length] : [replica];
      const results = await Promise.all(targets.map((r) => this.attempt(op, r)));
      const ok = results.some((status) => status === 'OK');
      if (ok && op.requestId !== null && !settling) {
        const share = RESOLUTION_METHODS.has(op.method)
          ? RESOLUTION_REDELIVERY_SHARE
          : REDELIVERY_SHARE;
        if (Math.random() < share) await this.attempt(op, (replica + 1) % this.clients.length);
      }
      if (results.some((status) => isDefinite(status))) return true;
      replica = (replica + 1) % this.clients.length;
      await sleep(50 + Math.random() * 250);
    }
    if (op.requestId !== null && !settling) this.unsettled.push(op);
    return false;
  }

  /** One attempt, recorded; resolves to its status. */
  private async attempt(op: Operation, replica: number): Promise<string> {
    const start = Date.now() - this.t0;
    const deadline = RESOLUTION_METHODS.has(op.method)
      ? RESOLUTION_DEADLINE_MS
      : op.requestId
        ? MUTATION_DEADLINE_MS
        : READ_DEADLINE_MS;
    const result = await this.clients[replica]!.call(op.method, op.bytes, deadline);
    this.attempts++;
    const key = `${op.method} ${result.status}${result.reason ? `/${result.reason}` : ''}`;
    this.byMethodStatus.set(key, (this.byMethodStatus.get(key) ?? 0) + 1);
    let effect: Effect | undefined;
    if (result.status === 'OK' && result.bytes) {
      effect = op.effect?.(result.bytes);
      op.learn?.(result.bytes);
    } else if (isDefinite(result.status)) op.refused?.(result.reason);
    this.history.write({
      kind: 'attempt',
      opId: op.opId,
      requestId: op.requestId,
      method: op.method,
      request: op.json,
      replica,
      start,
      end: Date.now() - this.t0,
      status: result.status,
      reason: result.reason,
      message: result.message.slice(0, 300),
      replayed: result.replayed,
      ...(result.bytes && {
        responseHash: createHash('sha256').update(result.bytes).digest('hex'),
      }),
      ...(effect && { effect }),
    });
    return result.status;
  }

  private op<T>(
    method: string,
    codec: Codec<T>,
    request: T,
    requestId: string | null,
    more: Pick<Operation, 'effect' | 'learn' | 'refused'> = {},
  ): Operation {
    return {
      opId: this.nextOpId++,
      method,
      requestId,
      json: codec.toJSON(request),
      bytes: codec.encode(request).finish(),
      ...more,
    };
  }

  private build(method: string): Operation | undefined {
    const requestId = randomUUID();
    switch (method) {
      case 'ExecuteSwap':
      case 'ValidateSwap': {
        const swap = this.swapToTry();
        if (method === 'ValidateSwap') {
          return this.op(
            method,
            ValidateSwapRequest,
            ValidateSwapRequest.fromPartial({ ...swap, reason: 'chaos validate' }),
            null,
          );
        }
        const request = ExecuteSwapRequest.fromPartial({
          ...swap,
          reason: `${REASON_PREFIX}${requestId}`,
          requestId,
        });
        return this.op(method, ExecuteSwapRequest, request, requestId, {
          effect: (b) => swapEffect(ExecuteSwapResponse.decode(b).swap),
          learn: (b) => this.learnSwap(ExecuteSwapResponse.decode(b).swap, false),
        });
      }
      case 'RollbackSwap': {
        const swapId =
          (Math.random() < RESOLUTION_ROLLBACK_SHARE && this.randomOf(this.resolutionSwaps)) ||
          this.randomOf(this.swaps);
        if (!swapId) return undefined;
        const request = RollbackSwapRequest.fromPartial({
          swapId,
          reason: `${REASON_PREFIX}${requestId}`,
          requestId,
        });
        return this.op(method, RollbackSwapRequest, request, requestId, {
          effect: (b) => swapEffect(RollbackSwapResponse.decode(b).swap),
          learn: (b) => this.learnSwap(RollbackSwapResponse.decode(b).swap, true),
        });
      }
      case 'GetSwap': {
        const swapId = this.randomOf(this.swaps);
        if (!swapId) return undefined;
        return this.op(method, GetSwapRequest, GetSwapRequest.fromPartial({ swapId }), null);
      }
      case 'ListSwaps': {
        const group = this.randomOf(this.schedule.groups)!;
        const facultyId = this.randomOf(group.faculty)!;
        return this.op(
          method,
          ListSwapsRequest,
          ListSwapsRequest.fromPartial({ facultyId, pageSize: 20 }),
          null,
        );
      }
      case 'DetectConflicts': {
        const [weekFrom, weekTo] = this.window(12);
        return this.op(
          method,
          DetectConflictsRequest,
          DetectConflictsRequest.fromPartial({ weekFrom, weekTo }),
          null,
          {
            learn: (b) =>
              DetectConflictsResponse.decode(b).created.forEach((c) => this.learnConflict(c)),
          },
        );
      }
      case 'ListConflicts': {
        const [weekFrom, weekTo] = this.window(24);
        const status =
          Math.random() < 0.7
            ? ConflictStatus.CONFLICT_STATUS_NEW
            : ConflictStatus.CONFLICT_STATUS_ACKNOWLEDGED;
        const request = ListConflictsRequest.fromPartial({
          weekFrom,
          weekTo,
          status,
          pageSize: 100,
        });
        return this.op(method, ListConflictsRequest, request, null, {
          learn: (b) =>
            ListConflictsResponse.decode(b).conflicts.forEach((c) => this.learnConflict(c)),
        });
      }
      case 'GetConflict': {
        const conflictId = this.randomOf([...this.conflicts.keys()]);
        if (!conflictId) return undefined;
        return this.op(
          method,
          GetConflictRequest,
          GetConflictRequest.fromPartial({ conflictId }),
          null,
        );
      }
      case 'GetResolutionOptions': {
        const conflictId = this.openConflict();
        if (!conflictId) return undefined;
        return this.op(
          method,
          GetResolutionOptionsRequest,
          GetResolutionOptionsRequest.fromPartial({ conflictId }),
          null,
          {
            learn: (b) => {
              const option = GetResolutionOptionsResponse.decode(b).options.find(
                (o) => !o.requiresHuman,
              );
              if (option) this.options.set(conflictId, option.optionId);
            },
          },
        );
      }
      case 'AcknowledgeConflict': {
        const conflictId = this.openConflict(ConflictStatus.CONFLICT_STATUS_NEW);
        if (!conflictId) return undefined;
        const request = AcknowledgeConflictRequest.fromPartial({
          conflictId,
          notes: 'chaos',
          requestId,
        });
        return this.op(method, AcknowledgeConflictRequest, request, requestId, {
          effect: (b) => conflictEffect(AcknowledgeConflictResponse.decode(b).conflict),
          learn: (b) => this.learnConflict(AcknowledgeConflictResponse.decode(b).conflict),
        });
      }
      case 'IgnoreConflict': {
        const candidates = [...this.conflicts].filter(
          ([, c]) => c.type !== ConflictType.CONFLICT_TYPE_LEAVE_FMIT_OVERLAP && isOpen(c.status),
        );
        const conflictId = this.randomOf(candidates)?.[0];
        if (!conflictId) return undefined;
        const request = IgnoreConflictRequest.fromPartial({
          conflictId,
          reason: 'chaos',
          requestId,
        });
        return this.op(method, IgnoreConflictRequest, request, requestId, {
          effect: (b) => conflictEffect(IgnoreConflictResponse.decode(b).conflict),
          learn: (b) => this.learnConflict(IgnoreConflictResponse.decode(b).conflict),
        });
      }
      case 'ResolveConflict':
        return this.resolve(requestId);
      case 'AutoResolve': {
        const ids = new Set<string>();
        for (let i = 0; i < 1 + Math.floor(Math.random() * 4); i++) {
          const id = this.openConflict();
          if (id) ids.add(id);
        }
        if (ids.size === 0) return undefined;
        const request = AutoResolveRequest.fromPartial({
          conflictIds: [...ids],
          maxRisk: RiskLevel.RISK_LEVEL_HIGH,
          requestId,
        });
        return this.op(method, AutoResolveRequest, request, requestId, {
          effect: (b) => ({
            results: AutoResolveResponse.decode(b).results.map((r) => ({
              conflictId: r.conflictId,
              outcome: autoResolveOutcomeToJSON(r.outcome).replace('AUTO_RESOLVE_OUTCOME_', ''),
              swapId: r.swapId,
              message: r.message,
            })),
          }),
          learn: (b) => {
            for (const r of AutoResolveResponse.decode(b).results) {
              const known = this.conflicts.get(r.conflictId);
              if (known) known.status = ConflictStatus.CONFLICT_STATUS_RESOLVED;
              if (r.swapId) this.rememberSwap(r.swapId, true);
            }
          },
        });
      }
      default:
        return undefined;
    }
  }

  /** A ResolveConflict by strategy, or, half the time, by an option id read just before. */
  private resolve(requestId: string): Operation | undefined {
    const conflictId = this.openConflict();
    if (!conflictId) return undefined;
    const optionId = Math.random() < 0.5 ? this.options.get(conflictId) : undefined;
    const byStrategy = ResolveConflictRequest.fromPartial({
      conflictId,
      ...(optionId
        ? { optionId }
        : { strategy: ResolutionStrategy.RESOLUTION_STRATEGY_SWAP_ASSIGNMENTS }),
      notes: 'chaos',
      requestId,
    });
    const op = this.op('ResolveConflict', ResolveConflictRequest, byStrategy, requestId, {
      effect: (b) => {
        const { conflict, swap } = ResolveConflictResponse.decode(b);
        return { ...conflictEffect(conflict), ...(swap && swapEffect(swap)) };
      },
      learn: (b) => {
        const { conflict, swap } = ResolveConflictResponse.decode(b);
        this.learnConflict(conflict);
        if (swap) this.learnSwap(swap, false, true);
      },
      // A conflict whose cause has moved on (its week swapped away) stays open but cannot be
      // resolved; the workload leaves it, so resolutions go to conflicts that can be.
      refused: (reason) => {
        if (reason === 'NO_ASSIGNMENTS' || reason === 'ALREADY_RESOLVED') {
          this.conflicts.delete(conflictId);
        }
      },
    });
    return op;
  }

  /** A swap request from what the workload believes; stale beliefs make refusals, which is fine. */
  private swapToTry(): Omit<ExecuteSwapRequest, 'reason' | 'requestId'> {
    const group = this.randomOf(this.schedule.groups)!;
    const [week0, week1] = group.weeks;
    const holder0 = this.holders.get(week0)!;
    const holder1 = this.holders.get(week1)!;
    if (holder0 !== holder1 && Math.random() < 0.6) {
      return {
        sourceFacultyId: holder0,
        sourceWeek: week0,
        targetFacultyId: holder1,
        targetWeek: week1,
        swapType: SwapType.SWAP_TYPE_ONE_TO_ONE,
      };
    }
    const week = Math.random() < 0.5 ? week0 : week1;
    const source = this.holders.get(week)!;
    const others = group.faculty.filter((f) => f !== source);
    return {
      sourceFacultyId: source,
      sourceWeek: week,
      targetFacultyId: this.randomOf(others) ?? group.faculty[2],
      targetWeek: '',
      swapType: SwapType.SWAP_TYPE_ABSORB,
    };
  }

  private learnSwap(swap: Swap | undefined, rolledBack: boolean, resolution = false): void {
    if (!swap) return;
    const give = (week: string, to: string) => {
      if (this.groupOfWeek.has(week)) this.holders.set(week, to);
    };
    const [from, to] = rolledBack
      ? [swap.targetFacultyId, swap.sourceFacultyId]
      : [swap.sourceFacultyId, swap.targetFacultyId];
    give(swap.sourceWeek, to);
    if (swap.targetWeek) give(swap.targetWeek, from);
    if (!rolledBack) this.rememberSwap(swap.id, resolution);
  }

  private rememberSwap(id: string, resolution = false): void {
    const list = resolution ? this.resolutionSwaps : this.swaps;
    list.push(id);
    if (list.length > 500) list.splice(0, 100);
  }

  private learnConflict(conflict: Conflict | undefined): void {
    if (!conflict) return;
    this.conflicts.set(conflict.id, { type: conflict.type, status: conflict.status });
    if (this.conflicts.size > 2000) {
      for (const [id, c] of this.conflicts) if (!isOpen(c.status)) this.conflicts.delete(id);
    }
  }

  private openConflict(status?: ConflictStatus): string | undefined {
    const open = [...this.conflicts].filter(([, c]) =>
      status ? c.status === status : isOpen(c.status),
    );
    return this.randomOf(open)?.[0];
  }

  /** A range of `weeks` weeks inside the chaos schedule. */
  private window(weeks: number): [string, string] {
    const { firstWeek, groups } = this.schedule;
    const span = groups.length * 4;
    const from = Math.floor(Math.random() * Math.max(1, span - weeks + 1));
    return [
      addDays(firstWeek, 7 * from),
      addDays(firstWeek, 7 * Math.min(span - 1, from + weeks - 1)),
    ];
  }

  private randomOf<T>(list: readonly T[]): T | undefined {
    return list.length === 0 ? undefined : list[Math.floor(Math.random() * list.length)];
  }
}

function isOpen(status: ConflictStatus): boolean {
  return (
    status === ConflictStatus.CONFLICT_STATUS_NEW ||
    status === ConflictStatus.CONFLICT_STATUS_ACKNOWLEDGED
  );
}

function swapEffect(swap: Swap | undefined): Effect {
  if (!swap) return {};
  return {
    swapId: swap.id,
    swapStatus: swapStatusToJSON(swap.status).replace('SWAP_STATUS_', ''),
    movesHash: movesDigest(
      swap.movedAssignments.map((m) => ({
        id: m.assignmentId,
        from: m.fromPersonId,
        to: m.toPersonId,
        version: m.version,
      })),
      swap.movedCalls.map((m) => ({
        id: m.callId,
        from: m.fromPersonId,
        to: m.toPersonId,
        version: m.version,
      })),
    ),
  };
}

function conflictEffect(conflict: Conflict | undefined): Effect {
  if (!conflict) return {};
  return {
    conflictId: conflict.id,
    conflictStatus: conflictStatusToJSON(conflict.status).replace('CONFLICT_STATUS_', ''),
  };
}
