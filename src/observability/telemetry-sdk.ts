import { readFileSync } from 'node:fs';
import path from 'node:path';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { GrpcInstrumentation } from '@opentelemetry/instrumentation-grpc';
import { IORedisInstrumentation } from '@opentelemetry/instrumentation-ioredis';
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { type IMetricReader, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import type { TelemetryConfig } from '../config';
import { ExpectedGrpcOutcomes } from './span-status';

/** Health checks and reflection are probed constantly; their spans would drown the real ones. */
const UNTRACED_METHODS = ['Check', 'Watch', 'ServerReflectionInfo'];

/**
 * Starts the OpenTelemetry SDK: OTLP/HTTP export of traces and metrics (set up
 * by the standard OTEL_* variables), a Prometheus scrape endpoint, W3C trace
 * context through gRPC metadata, and instrumentation of grpc-js, pg and ioredis.
 * It must run before those modules are loaded, which is why it is preloaded;
 * `shutdownTelemetry` flushes it.
 */
export function startTelemetry(config: TelemetryConfig): void {
  if (!config.enabled) return;
  const metricReaders: IMetricReader[] = [];
  if (config.metricsPort > 0)
    metricReaders.push(new PrometheusExporter({ port: config.metricsPort }));
  if (config.otlp)
    metricReaders.push(new PeriodicExportingMetricReader({ exporter: new OTLPMetricExporter() }));
  const spanProcessors = config.otlp
    ? [new ExpectedGrpcOutcomes(), new BatchSpanProcessor(new OTLPTraceExporter())]
    : [];
  const sdk = new NodeSDK({
    // Merged with the resource detected from OTEL_RESOURCE_ATTRIBUTES (k8s pod and namespace).
    resource: resourceFromAttributes({
      [ATTR_SERVICE_NAME]: config.serviceName,
      [ATTR_SERVICE_VERSION]: serviceVersion(),
      'deployment.environment': config.environment,
    }),
    spanProcessors,
    metricReaders,
    instrumentations: [
      new GrpcInstrumentation({ ignoreGrpcMethods: UNTRACED_METHODS }),
      new PgInstrumentation({
        requireParentSpan: true,
        // A pooled connection checkout is not a database operation; one span per statement is enough.
        ignoreConnectSpans: true,
        // MikroORM inlines parameters into the SQL text, and a swap's free-text
        // reason may name people; traces keep the statement shape, not values.
        requestHook: (span, { query }) =>
          span.setAttribute('db.query.text', statementShape(query.text)),
      }),
      new IORedisInstrumentation({ requireParentSpan: true }),
    ],
  });
  sdk.start();
}

function serviceVersion(): string {
  try {
    const manifest = JSON.parse(
      readFileSync(path.resolve(__dirname, '../../package.json'), 'utf8'),
    ) as { version?: string };
    return manifest.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** Longest SQL text kept on a span: enough to tell statements apart, not to export them whole. */
const MAX_STATEMENT_CHARS = 300;

/** The statement with its literals masked and its length capped. */
export function statementShape(sql: string): string {
  const masked = sql
    .replace(/'(?:[^']|'')*'/g, "'?'")
    .replace(/\s+/g, ' ')
    .trim();
  return masked.length > MAX_STATEMENT_CHARS ? `${masked.slice(0, MAX_STATEMENT_CHARS)}…` : masked;
}
