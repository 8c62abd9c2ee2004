import type { Attributes, Span, Tracer } from '@opentelemetry/api';
import { recordOutcome } from './span-status';

/**
 * Runs a use case as the active span `name` (e.g. `swap.execute`), so lock,
 * transaction and SQL spans nest under it. Attributes carry ids, never names.
 */
export function inBusinessSpan<T>(
  tracer: Tracer,
  name: string,
  attributes: Attributes,
  work: (span: Span) => Promise<T>,
): Promise<T> {
  return tracer.startActiveSpan(name, { attributes }, async (span) => {
    try {
      return await work(span);
    } catch (error) {
      recordOutcome(span, error);
      throw error;
    } finally {
      span.end();
    }
  });
}
