import { context, isSpanContextValid, trace } from '@opentelemetry/api';
import pino, { type Logger } from 'pino';

/**
 * The process logger: JSON lines on stdout. Every line written while a span is
 * active carries its trace_id and span_id, so a log line leads to its trace.
 */
export function createLogger(level: string, base: Record<string, string> = {}): Logger {
  return pino({
    level,
    base: { service: 'swap-service', ...base },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    mixin() {
      const spanContext = trace.getSpan(context.active())?.spanContext();
      // Without tracing, spans are placeholders with all-zero ids: leave them out.
      if (!spanContext || !isSpanContextValid(spanContext)) return {};
      return { trace_id: spanContext.traceId, span_id: spanContext.spanId };
    },
  });
}
