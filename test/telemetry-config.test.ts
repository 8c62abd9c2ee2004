import { OTLPMetricExporter as JsonMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPTraceExporter as ProtobufTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { BatchSpanProcessor } from '@opentelemetry/sdk-trace';
import { afterEach, describe, expect, it } from 'vitest';
import { loadTelemetryConfig } from '../src/config';
import { metricReadersOf, spanExportsOf } from '../src/observability/telemetry-sdk';

/**
 * The OTEL_* variables that choose what the SDK builds: parsed by config.ts,
 * turned into exporters by telemetry-sdk.ts. The exporters are built here
 * (not started); they read their endpoints themselves.
 */

const OTLP = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', METRICS_PORT: '0' };
const shutdowns: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(shutdowns.splice(0).map((stop) => stop()));
});

describe('OTEL_* exporter selection', () => {
  it('sends OTLP over http/protobuf by default when an endpoint is set', () => {
    const config = loadTelemetryConfig(OTLP);
    expect(config).toMatchObject({
      tracesExporters: ['otlp'],
      metricsExporters: ['otlp'],
      tracesProtocol: 'http/protobuf',
      metricsProtocol: 'http/protobuf',
      metricExportIntervalMs: 60_000,
    });
    const [processor] = spanExportsOf(config);
    expect(processor).toBeInstanceOf(BatchSpanProcessor);
    const exporter = (processor as unknown as { _exporter: unknown })._exporter;
    expect(exporter).toBeInstanceOf(ProtobufTraceExporter);
    shutdowns.push(() => processor!.shutdown());
  });

  it('honours the protocol, the exporter lists and the export interval', () => {
    const config = loadTelemetryConfig({
      ...OTLP,
      OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: 'http/json',
      OTEL_TRACES_EXPORTER: 'none',
      OTEL_METRIC_EXPORT_INTERVAL: '5000',
    });
    expect(config.tracesExporters).toEqual([]);
    expect(spanExportsOf(config)).toEqual([]);
    const [reader] = metricReadersOf(config);
    expect(reader).toBeInstanceOf(PeriodicExportingMetricReader);
    const internals = reader as unknown as { _exporter: unknown; _exportInterval: number };
    expect(internals._exporter).toBeInstanceOf(JsonMetricExporter);
    expect(internals._exportInterval).toBe(5000);
    shutdowns.push(() => reader!.shutdown());
  });

  it('makes spans without exporting them when nothing is configured', () => {
    const config = loadTelemetryConfig({ METRICS_PORT: '0' });
    expect(config.enabled).toBe(true);
    expect(config.tracesExporters).toEqual([]);
    expect(config.metricsExporters).toEqual([]);
  });

  it('refuses values the SDK does not define, naming the variable', () => {
    expect(() => loadTelemetryConfig({ ...OTLP, OTEL_EXPORTER_OTLP_PROTOCOL: 'http' })).toThrow(
      /OTEL_EXPORTER_OTLP_PROTOCOL/,
    );
    expect(() => loadTelemetryConfig({ ...OTLP, OTEL_TRACES_EXPORTER: 'zipkin' })).toThrow(
      /OTEL_TRACES_EXPORTER/,
    );
    expect(() => loadTelemetryConfig({ ...OTLP, OTEL_METRICS_EXPORTER: 'otlp,none' })).toThrow(
      /none stands alone/,
    );
    expect(() => loadTelemetryConfig({ ...OTLP, OTEL_METRICS_EXPORTER: 'prometheus' })).toThrow(
      /METRICS_PORT/,
    );
  });
});
