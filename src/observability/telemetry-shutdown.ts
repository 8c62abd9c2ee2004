import { metrics, ProxyTracerProvider, trace } from '@opentelemetry/api';

interface Shutdownable {
  shutdown?: () => Promise<void>;
}

/**
 * Flushes pending spans and metrics and stops exporting. The preloaded SDK
 * registers its providers with the OpenTelemetry API, which is process-global
 * by design, so they are found there rather than handed from the preload to
 * main; without the SDK, the API's no-op providers have nothing to shut down.
 */
export async function shutdownTelemetry(): Promise<void> {
  const tracerProvider = trace.getTracerProvider();
  const tracing = (
    tracerProvider instanceof ProxyTracerProvider ? tracerProvider.getDelegate() : tracerProvider
  ) as Shutdownable;
  const metering = metrics.getMeterProvider() as Shutdownable;
  await Promise.all([tracing.shutdown?.(), metering.shutdown?.()]);
}
