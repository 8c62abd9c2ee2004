import { Redis } from 'ioredis';
import { ourContender, redlockContender, semaphoreContender } from './lock-contenders';
import { runLockLoad } from './lock-load';
async function main() {
  const [which = 'ours', keysArg = '1', opt = 'default', concArg = '16'] = process.argv.slice(2);
  const keys = Number(keysArg);
  const options =
    opt === 'autopipe'
      ? { enableAutoPipelining: true }
      : opt === 'failfast'
        ? {
            maxRetriesPerRequest: 1,
            enableOfflineQueue: false,
            commandTimeout: 1000,
            connectTimeout: 2000,
          }
        : {};
  const admin = new Redis();
  const c = new Redis(options);
  await c.ping();
  const k =
    which === 'ours'
      ? ourContender(c, 'swapbench_prof', 10000)
      : which === 'redlock'
        ? redlockContender(c, 'swapbench_prof', 10000)
        : semaphoreContender(c, 'swapbench_prof', 10000);
  const cell = { contender: which, keys, concurrency: Number(concArg), contended: false };
  await runLockLoad(k, cell, 1000, 'jit', admin);
  const res: string[] = [];
  for (let r = 0; r < 3; r++) {
    const s = await runLockLoad(k, cell, 1000, 'm' + r, admin);
    res.push(
      `${((s.granted / s.elapsedMs) * 1000).toFixed(0)}/s ${((s.nodeCpuMs * 1000) / s.granted).toFixed(1)}us`,
    );
  }
  console.log(which, keys, opt, concArg, res.join('  '));
  admin.disconnect();
  c.disconnect();
}
void main();
