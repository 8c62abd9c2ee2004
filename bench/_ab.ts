import { randomBytes, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { lockCommands } from '../src/coordination/redis-lock-scripts';
import { type LockContender, ourContender, redlockContender } from './lock-contenders';
import { runLockLoad } from './lock-load';

function rawScript(client: Redis, prefix: string, ttl: number, owner: () => string, name: string): LockContender {
  const cmds = lockCommands(client);
  const counter = `{${prefix}}:fencing`;
  return {
    name, notes: '',
    async tryLock(names) {
      const keys = [...new Set(names.map((n) => `{${prefix}}:lock:${n}`))].sort();
      const o = owner();
      const token = await cmds.swapLockAcquire(keys.length + 1, ...keys, counter, o, ttl, '0');
      if (!token) return undefined;
      return async () => void (await cmds.swapLockRelease(keys.length, ...keys, o));
    },
  };
}

async function main() {
  const keys = Number(process.argv[2] ?? 4);
  const conc = Number(process.argv[3] ?? 16);
  const admin = new Redis();
  const mk = () => new Redis();
  const cs: LockContender[] = [
    ourContender(mk(), 'swapbench_ab', 10000),
    redlockContender(mk(), 'swapbench_ab', 10000),
    rawScript(mk(), 'swapbench_ab', 10000, () => randomBytes(16).toString('hex'), 'script+randomBytes'),
    rawScript(mk(), 'swapbench_ab', 10000, () => randomUUID(), 'script+randomUUID'),
  ];
  const rates = new Map<string, number[]>(cs.map((c) => [c.name, []]));
  const cpu = new Map<string, number[]>(cs.map((c) => [c.name, []]));
  for (const c of cs) await runLockLoad(c, { contender: c.name, keys, concurrency: conc, contended: false }, 800, 'jit', admin);
  for (let r = 0; r < 8; r++) for (let i = 0; i < cs.length; i++) {
    const c = cs[(i + r) % cs.length]!;
    await runLockLoad(c, { contender: c.name, keys, concurrency: conc, contended: false }, 100, `w${r}`, admin);
    const s = await runLockLoad(c, { contender: c.name, keys, concurrency: conc, contended: false }, 500, `r${r}`, admin);
    rates.get(c.name)!.push(s.windowRates[0]!); cpu.get(c.name)!.push(s.nodeCpuMs * 1000 / s.granted);
  }
  const ours = rates.get('ours')!;
  for (const c of cs) {
    const r = rates.get(c.name)!; const ratios = r.map((x, i) => ours[i]! / x).sort();
    console.log(c.name.padEnd(20), 'mean/s', (r.reduce((a, b) => a + b) / r.length).toFixed(0), 'cpu µs', (cpu.get(c.name)!.reduce((a, b) => a + b) / r.length).toFixed(1), 'ours÷this median', ratios[4]!.toFixed(2), 'range', ratios[0]!.toFixed(2), ratios[7]!.toFixed(2));
  }
  process.exit(0);
}
void main();
