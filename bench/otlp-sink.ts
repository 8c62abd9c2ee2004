import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What an OTLP sink has received so far. */
export interface SinkCounts {
  traceExports: number;
  /** Spans in JSON trace exports (each carries one `"spanId"` key). */
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
        for (let at = body.indexOf(SPAN_ID); at >= 0; at = body.indexOf(SPAN_ID, at + 1))
          counts.spans++;
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
