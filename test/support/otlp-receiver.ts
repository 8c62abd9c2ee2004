import http from 'node:http';
import type net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { gunzipSync } from 'node:zlib';

/**
 * A stand-in for an OpenTelemetry collector: an OTLP/HTTP endpoint that keeps
 * the spans it is sent. It takes OTLP/JSON (what @opentelemetry/exporter-*-otlp-http
 * send); a protobuf body is answered 415, so a change of exporter fails loudly
 * instead of silently losing spans. Metrics and logs are accepted and dropped.
 */

export type AttributeValue = string | number | boolean | AttributeValue[] | undefined;

/** One exported span, flattened from the OTLP/JSON request. */
export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  /** Empty for a root span. */
  parentSpanId: string;
  name: string;
  /** OTLP SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  /** OTLP StatusCode: 0 unset, 1 ok, 2 error. */
  status: { code: number; message?: string };
  attributes: Record<string, AttributeValue>;
  events: { name: string; attributes: Record<string, AttributeValue> }[];
  scope: string;
  service: AttributeValue;
}

/** OTLP StatusCode ERROR. */
export const STATUS_ERROR = 2;
/** OTLP SpanKind SERVER. */
export const KIND_SERVER = 2;

interface JsonAnyValue {
  stringValue?: string;
  intValue?: number | string;
  doubleValue?: number;
  boolValue?: boolean;
  arrayValue?: { values?: JsonAnyValue[] };
}
interface JsonKeyValue {
  key: string;
  value?: JsonAnyValue;
}
interface JsonSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind?: number;
  status?: { code?: number; message?: string };
  attributes?: JsonKeyValue[];
  events?: { name: string; attributes?: JsonKeyValue[] }[];
}
interface JsonTraceRequest {
  resourceSpans?: {
    resource?: { attributes?: JsonKeyValue[] };
    scopeSpans?: { scope?: { name?: string }; spans?: JsonSpan[] }[];
  }[];
}

function valueOf(value: JsonAnyValue | undefined): AttributeValue {
  if (!value) return undefined;
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.intValue !== undefined) return Number(value.intValue);
  if (value.doubleValue !== undefined) return value.doubleValue;
  if (value.boolValue !== undefined) return value.boolValue;
  if (value.arrayValue) return (value.arrayValue.values ?? []).map(valueOf);
  return undefined;
}

function attributesOf(list: JsonKeyValue[] | undefined): Record<string, AttributeValue> {
  return Object.fromEntries((list ?? []).map((kv) => [kv.key, valueOf(kv.value)]));
}

function spansOf(request: JsonTraceRequest): ReceivedSpan[] {
  const spans: ReceivedSpan[] = [];
  for (const resourceSpans of request.resourceSpans ?? []) {
    const service = attributesOf(resourceSpans.resource?.attributes)['service.name'];
    for (const scopeSpans of resourceSpans.scopeSpans ?? []) {
      for (const span of scopeSpans.spans ?? []) {
        spans.push({
          traceId: span.traceId,
          spanId: span.spanId,
          parentSpanId: span.parentSpanId ?? '',
          name: span.name,
          kind: span.kind ?? 0,
          status: { code: span.status?.code ?? 0, message: span.status?.message },
          attributes: attributesOf(span.attributes),
          events: (span.events ?? []).map((e) => ({
            name: e.name,
            attributes: attributesOf(e.attributes),
          })),
          scope: scopeSpans.scope?.name ?? '',
          service,
        });
      }
    }
  }
  return spans;
}

export interface OtlpReceiver {
  /** What OTEL_EXPORTER_OTLP_ENDPOINT should be set to. */
  endpoint: string;
  /** Every span received so far, in arrival order. */
  spans: ReceivedSpan[];
  /** Requests per path, e.g. `/v1/traces`. */
  requests: Map<string, number>;
  /** Bodies that were refused (not OTLP/JSON, or not parseable). */
  refused: string[];
  /** The spans of one trace. */
  trace(traceId: string): ReceivedSpan[];
  /**
   * Polls (bounded) until `condition` holds on the spans of `traceId`; the
   * limit only stops a broken test from hanging.
   */
  waitForTrace(
    traceId: string,
    what: string,
    condition: (spans: ReceivedSpan[]) => boolean,
  ): Promise<ReceivedSpan[]>;
  close(): Promise<void>;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const requests = new Map<string, number>();
  const refused: string[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const path = req.url ?? '';
      requests.set(path, (requests.get(path) ?? 0) + 1);
      const type = req.headers['content-type'] ?? '';
      if (req.method !== 'POST' || !path.startsWith('/v1/')) {
        res.writeHead(404).end();
        return;
      }
      if (!type.startsWith('application/json')) {
        refused.push(`${path}: ${type}`);
        res.writeHead(415).end();
        return;
      }
      let body = Buffer.concat(chunks);
      try {
        if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
        const parsed: unknown = JSON.parse(body.toString('utf8'));
        if (path === '/v1/traces') spans.push(...spansOf(parsed as JsonTraceRequest));
      } catch (error) {
        refused.push(`${path}: ${String(error)}`);
        res.writeHead(400).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as net.AddressInfo;
  const trace = (traceId: string) => spans.filter((s) => s.traceId === traceId);
  return {
    endpoint: `http://127.0.0.1:${port}`,
    spans,
    requests,
    refused,
    trace,
    async waitForTrace(traceId, what, condition) {
      for (let i = 0; i < 300; i++) {
        const found = trace(traceId);
        if (condition(found)) return found;
        await sleep(50);
      }
      const names = trace(traceId).map((s) => s.name);
      throw new Error(`gave up waiting for ${what}; spans of the trace: ${names.join(', ')}`);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
