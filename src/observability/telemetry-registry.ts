import type { TelemetryHandle } from './telemetry-sdk';

let current: TelemetryHandle | undefined;

/** Called once by the preloaded bootstrap (src/telemetry.ts). */
export function registerTelemetry(handle: TelemetryHandle): void {
  current = handle;
}

/**
 * The process's telemetry, if the bootstrap was preloaded. The OpenTelemetry
 * SDK is process-global by design; this only lets shutdown find it to flush.
 */
export function registeredTelemetry(): TelemetryHandle | undefined {
  return current;
}
