import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What an OTLP sink has received so far. */
export interface SinkCounts {
  traceExports: number;
  /** Spans in trace exports, JSON (each carries one `"spanId"` key) or protobuf (the default). */
  spans: number;
  metricExports: number;
  bytes: number;
}

export interface OtlpSink {
  /** For OTEL_EXPORTER_OTLP_ENDPOINT: the exporters append /v1/traces and /v1/metrics. */
  url: string;
  counts(): SinkCounts;
  close(): Promise<void>;
}

const SPAN_ID = Buffer.from('"spanId"');

/**
 * An OTLP/HTTP endpoint that accepts everything and keeps nothing: it reads
 * each export, counts it, and answers 200 with an empty (JSON) success, so the
 * exporters do their full work without a collector's cost landing on the bench.
 */
export async function startOtlpSink(): Promise<OtlpSink> {
  const counts: SinkCounts = { traceExports: 0, spans: 0, metricExports: 0, bytes: 0 };
  const server = createServer((request, response) => {
    void readBody(request).then((body) => {
      counts.bytes += body.length;
      if (request.url?.endsWith('/v1/traces')) {
        counts.traceExports++;
        if (request.headers['content-type']?.includes('json')) {
          for (let at = body.indexOf(SPAN_ID); at >= 0; at = body.indexOf(SPAN_ID, at + 1))
            counts.spans++;
        } else {
          counts.spans += protobufSpans(body);
        }
      } else if (request.url?.endsWith('/v1/metrics')) {
        counts.metricExports++;
      }
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    counts: () => ({ ...counts }),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function readBody(request: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => resolve(Buffer.concat(chunks)));
    request.on('error', () => resolve(Buffer.concat(chunks)));
  });
}

/**
 * Spans in a protobuf ExportTraceServiceRequest: resource_spans (field 1),
 * each holding scope_spans (field 2), each holding spans (field 2).
 */
function protobufSpans(body: Buffer): number {
  let spans = 0;
  for (const resource of fieldsOf(body, 1))
    for (const scope of fieldsOf(resource, 2)) spans += fieldsOf(scope, 2).length;
  return spans;
}

/** The length-delimited values of field `wanted` in one protobuf message. */
function fieldsOf(message: Buffer, wanted: number): Buffer[] {
  const found: Buffer[] = [];
  let at = 0;
  const varint = () => {
    let value = 0;
    for (let shift = 0; ; shift += 7) {
      const byte = message[at++]!;
      value += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) return value;
    }
  };
  while (at < message.length) {
    const tag = varint();
    const wire = tag % 8;
    if (wire === 0) varint();
    else if (wire === 1) at += 8;
    else if (wire === 5) at += 4;
    else if (wire === 2) {
      const length = varint();
      if (Math.floor(tag / 8) === wanted) found.push(message.subarray(at, at + length));
      at += length;
    } else break;
  }
  return found;
}
