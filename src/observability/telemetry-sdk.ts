import { readFileSync } from 'node:fs';
import path from 'node:path';
import { OTLPMetricExporter as GrpcMetricExporter } from '@opentelemetry/exporter-metrics-otlp-grpc';
import { OTLPMetricExporter as JsonMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPMetricExporter as ProtobufMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { OTLPTraceExporter as GrpcTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as JsonTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtobufTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { GrpcInstrumentation } from '@opentelemetry/instrumentation-grpc';
import { IORedisInstrumentation } from '@opentelemetry/instrumentation-ioredis';
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import { RuntimeNodeInstrumentation } from '@opentelemetry/instrumentation-runtime-node';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  ConsoleMetricExporter,
  type IMetricReader,
  type PushMetricExporter,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { NodeSDK } from '@opentelemetry/sdk-node';
import {
  BatchSpanProcessor,
  ConsoleSpanExporter,
  SimpleSpanProcessor,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import { ATTR_DEPLOYMENT_ENVIRONMENT_NAME } from '@opentelemetry/semantic-conventions/incubating';
import type { OtlpProtocol, TelemetryConfig } from '../config';
import { PrometheusUnitsExporter } from './prometheus-units';
import { observeProcessCpu } from './process-metrics';
import { RpcSpanConventions } from './rpc-span-conventions';
import { StatementShapes } from './statement-shapes';
import { ExpectedGrpcOutcomes } from './span-status';

/** Health checks and reflection are probed constantly; their spans would drown the real ones. */
const UNTRACED_METHODS = ['Check', 'Watch', 'ServerReflectionInfo'];

/**
 * Starts the OpenTelemetry SDK: traces and metrics to the exporters the
 * OTEL_* variables name (OTLP over http/protobuf by default, the Prometheus
 * endpoint on METRICS_PORT), W3C trace context through gRPC metadata,
 * instrumentation of grpc-js, pg and ioredis, and the Node.js runtime's
 * metrics (event loop, heap, GC; CPU from process-metrics). Spans are made
 * even when none is exported, so log lines carry their trace ids. It must
 * run before the instrumented modules load, which is why it is preloaded;
 * `shutdownTelemetry` flushes it.
 */
export function startTelemetry(config: TelemetryConfig): void {
  if (!config.enabled) return;
  const shapes = new StatementShapes();
  const sdk = new NodeSDK({
    // Merged with the resource detected from OTEL_RESOURCE_ATTRIBUTES (k8s pod and namespace).
    resource: resourceFromAttributes({
      [ATTR_SERVICE_NAME]: config.serviceName,
      [ATTR_SERVICE_VERSION]: serviceVersion(),
      [ATTR_DEPLOYMENT_ENVIRONMENT_NAME]: config.environment,
    }),
    // Ours first: every processor's onEnding runs before any exporter's onEnd.
    spanProcessors: [
      new RpcSpanConventions(),
      new ExpectedGrpcOutcomes(),
      ...spanExportsOf(config),
    ],
    metricReaders: metricReadersOf(config),
    instrumentations: [
      new GrpcInstrumentation({ ignoreGrpcMethods: UNTRACED_METHODS }),
      new PgInstrumentation({
        requireParentSpan: true,
        // A pooled connection checkout is not a database operation; one span per statement is enough.
        ignoreConnectSpans: true,
        // MikroORM inlines parameters into the SQL text, and a swap's free-text
        // reason may name people; traces keep the statement shape, not values.
        requestHook: (span, { query }) => span.setAttribute('db.query.text', shapes.of(query.text)),
      }),
      new IORedisInstrumentation({ requireParentSpan: true }),
      new RuntimeNodeInstrumentation(),
    ],
  });
  sdk.start();
  observeProcessCpu();
}

/** The span processors that export, one per OTEL_TRACES_EXPORTER entry. */
export function spanExportsOf(config: TelemetryConfig): SpanProcessor[] {
  return config.tracesExporters.map((name) =>
    name === 'console'
      ? new SimpleSpanProcessor({ exporter: new ConsoleSpanExporter() })
      : new BatchSpanProcessor({ exporter: traceExporterFor(config.tracesProtocol) }),
  );
}

/** The metric readers, one per OTEL_METRICS_EXPORTER entry. */
export function metricReadersOf(config: TelemetryConfig): IMetricReader[] {
  return config.metricsExporters.map((name) => {
    if (name === 'prometheus') return new PrometheusUnitsExporter({ port: config.metricsPort });
    const exporter: PushMetricExporter =
      name === 'console' ? new ConsoleMetricExporter() : metricExporterFor(config.metricsProtocol);
    return new PeriodicExportingMetricReader({
      exporter,
      exportIntervalMillis: config.metricExportIntervalMs,
      exportTimeoutMillis: Math.min(30_000, config.metricExportIntervalMs),
    });
  });
}

/** The OTLP span exporter of a protocol; it reads its endpoint, headers and timeout itself. */
function traceExporterFor(protocol: OtlpProtocol): SpanExporter {
  if (protocol === 'grpc') return new GrpcTraceExporter();
  if (protocol === 'http/json') return new JsonTraceExporter();
  return new ProtobufTraceExporter();
}

function metricExporterFor(protocol: OtlpProtocol): PushMetricExporter {
  if (protocol === 'grpc') return new GrpcMetricExporter();
  if (protocol === 'http/json') return new JsonMetricExporter();
  return new ProtobufMetricExporter();
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
