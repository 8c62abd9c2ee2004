/**
 * Preloaded before the service (`node --require ./dist/telemetry.js dist/main.js`)
 * so that the OpenTelemetry SDK patches grpc-js, pg and ioredis before anything
 * loads them. Shutdown flushes it through the global API (`shutdownTelemetry`).
 */
import { ConfigError, loadTelemetryConfig } from './config';
import { startTelemetry } from './observability/telemetry-sdk';

try {
  const config = loadTelemetryConfig(process.env);
  startTelemetry(config);
  if (!config.enabled) process.stderr.write(`telemetry off: ${config.disabledBecause}\n`);
} catch (error) {
  // A bad configuration is reported by main.ts, with the full list of problems.
  if (!(error instanceof ConfigError)) throw error;
}
