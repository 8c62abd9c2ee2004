import { metrics } from '@opentelemetry/api';
import { INSTRUMENTATION_SCOPE } from './service-telemetry';

/**
 * CPU time of the process (`process.cpu.time`, by `cpu.mode` user/system, in
 * seconds), which the runtime instrumentation does not record: with
 * `rate()` it is the CPU the process uses, against its limit.
 */
export function observeProcessCpu(): void {
  metrics
    .getMeter(INSTRUMENTATION_SCOPE)
    .createObservableCounter('process.cpu.time', {
      description: 'CPU time of the process, by mode',
      unit: 's',
    })
    .addCallback((result) => {
      const { user, system } = process.cpuUsage();
      result.observe(user / 1e6, { 'cpu.mode': 'user' });
      result.observe(system / 1e6, { 'cpu.mode': 'system' });
    });
}
