import http2 from 'node:http2';
import { Client, credentials, Metadata, type ServiceError, status } from '@grpc/grpc-js';

/**
 * Calls that send exactly the bytes a test chooses: a real grpc-js client with
 * identity (de)serializers, so undecodable or non-UTF-8 request bytes reach
 * the server as they are, and a bare HTTP/2 request for headers a gRPC client
 * would never send (a malformed `grpc-timeout`).
 */

/** How a raw call ended. */
export interface RawOutcome {
  code: status;
  details: string;
  /** The response bytes, when the call succeeded. */
  response?: Buffer;
  error?: ServiceError;
}

/** A client on a connection of its own that sends raw request bytes to any method. */
export class RawClient {
  private readonly client: Client;

  constructor(address: string, options: Record<string, number> = {}) {
    this.client = new Client(address, credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
      ...options,
    });
  }

  /** Sends `bytes` as the request of unary `path` (`/swap.v1.SwapService/GetSwap`). */
  unary(path: string, bytes: Uint8Array, metadata = new Metadata()): Promise<RawOutcome> {
    return new Promise((resolve) => {
      this.client.makeUnaryRequest(
        path,
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.from(bytes),
        metadata,
        (error, response) =>
          resolve(
            error
              ? { code: error.code, details: error.details, error }
              : { code: status.OK, details: '', response },
          ),
      );
    });
  }

  /**
   * Sends `bytes` as the request of server-streaming `path`; ends at the
   * first response message (cancelling the stream) or at the status.
   */
  firstOfStream(path: string, bytes: Uint8Array): Promise<RawOutcome> {
    return new Promise((resolve) => {
      const stream = this.client.makeServerStreamRequest(
        path,
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.from(bytes),
        new Metadata(),
      );
      let settled = false;
      stream.on('data', (response: Buffer) => {
        if (settled) return;
        settled = true;
        resolve({ code: status.OK, details: '', response });
        stream.cancel();
      });
      stream.on('error', (error: ServiceError) => {
        if (settled) return;
        settled = true;
        resolve({ code: error.code, details: error.details, error });
      });
      stream.on('status', (s: { code: status; details: string }) => {
        if (settled) return;
        settled = true;
        resolve({ code: s.code, details: s.details });
      });
    });
  }

  close(): void {
    this.client.close();
  }
}

/**
 * One gRPC call over bare HTTP/2 with the `headers` given added to the
 * request's; resolves to the status the server answered (from trailers, or
 * from the headers of a trailers-only answer).
 */
export async function http2Call(
  address: string,
  path: string,
  message: Uint8Array,
  headers: Record<string, string>,
): Promise<{ code: number; details: string }> {
  const session = http2.connect(`http://${address}`);
  try {
    return await new Promise((resolve, reject) => {
      session.once('error', reject);
      const request = session.request({
        ':method': 'POST',
        ':path': path,
        'content-type': 'application/grpc',
        te: 'trailers',
        ...headers,
      });
      let answer: http2.IncomingHttpHeaders | undefined;
      const settle = (h: http2.IncomingHttpHeaders) => {
        if (h['grpc-status'] === undefined || answer) return;
        answer = h;
        resolve({
          code: Number(h['grpc-status']),
          details: decodeURIComponent(String(h['grpc-message'] ?? '')),
        });
      };
      request.on('response', settle);
      request.on('trailers', settle);
      request.on('error', reject);
      request.on('data', () => undefined);
      request.on('end', () => {
        if (!answer) reject(new Error('the stream ended without a grpc-status'));
      });
      const frame = Buffer.alloc(5 + message.length);
      frame.writeUInt32BE(message.length, 1);
      frame.set(message, 5);
      request.end(frame);
    });
  } finally {
    session.close();
  }
}
