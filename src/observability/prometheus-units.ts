import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import {
  type CollectionResult,
  DataPointType,
  type MetricData,
  type MetricReader,
} from '@opentelemetry/sdk-metrics';

type CollectionOptions = Parameters<MetricReader['collect']>[0];

/**
 * Suffixes the OpenTelemetry-to-Prometheus compatibility rules add for a
 * unit (UCUM), so `rpc.server.call.duration` (unit `s`) is scraped as
 * `rpc_server_call_duration_seconds`. Units in braces (`{resource}`) are
 * annotations and add nothing; `1` means a ratio, for gauges only.
 */
const UNIT_SUFFIXES: Readonly<Record<string, string>> = {
  s: 'seconds',
  ms: 'milliseconds',
  By: 'bytes',
};

/** The metric's name with the suffix its unit calls for, unless it has it already. */
export function prometheusName(metric: Pick<MetricData, 'descriptor' | 'dataPointType'>): string {
  const { name, unit } = metric.descriptor;
  const suffix =
    UNIT_SUFFIXES[unit] ??
    (unit === '1' && metric.dataPointType === DataPointType.GAUGE ? 'ratio' : undefined);
  if (!suffix) return name;
  const normalized = name.replace(/[^a-zA-Z0-9_:]/g, '_');
  return normalized.endsWith(`_${suffix}`) ? name : `${name}_${suffix}`;
}

/**
 * The Prometheus scrape endpoint, naming metrics as the compatibility rules
 * say. @opentelemetry/exporter-prometheus adds `_total` to counters but no
 * unit suffix, which left the semantic-convention histograms
 * (`db.client.operation.duration`, `rpc.server.call.duration`, the runtime's
 * `v8js.gc.duration`) without `_seconds`. Only this reader's view is renamed:
 * OTLP export keeps the convention names.
 */
export class PrometheusUnitsExporter extends PrometheusExporter {
  override async collect(options?: CollectionOptions): Promise<CollectionResult> {
    const result = await super.collect(options);
    for (const scope of result.resourceMetrics.scopeMetrics) {
      scope.metrics = scope.metrics.map((metric) => {
        const name = prometheusName(metric);
        return name === metric.descriptor.name
          ? metric
          : { ...metric, descriptor: { ...metric.descriptor, name } };
      });
    }
    return result;
  }
}
