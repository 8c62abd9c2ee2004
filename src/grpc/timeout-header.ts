import type http2 from 'node:http2';
import type { Server } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { http2ServersOf } from './ping-policy';

const TIMEOUT_HEADER = 'grpc-timeout';
/** What grpc-js itself accepts as a timeout (it answers anything else with INTERNAL). */
const GRPC_JS_TIMEOUT = /(\d{1,8})\s*([HMSmun])/;

/**
 * A call whose `grpc-timeout` header is malformed is served as if it had sent
 * none (so under the service's default deadline), as gRPC core does. grpc-js
 * would answer it INTERNAL "Invalid grpc-timeout value", which reads as our
 * bug. The header is dropped before grpc-js reads it: our listener goes ahead
 * of grpc-js's on each HTTP/2 server, and both see the same headers object.
 * Call it right after the server is bound, like the ping policy.
 */
export function ignoreMalformedTimeouts(server: Server, log: Logger): void {
  for (const http2Server of http2ServersOf(server)) {
    http2Server.prependListener(
      'stream',
      (_stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
        const timeout = headers[TIMEOUT_HEADER];
        if (timeout === undefined || GRPC_JS_TIMEOUT.test(String(timeout))) return;
        log.debug(
          { path: headers[':path'], timeout: String(timeout).slice(0, 40) },
          'malformed grpc-timeout ignored; the default deadline applies',
        );
        delete headers[TIMEOUT_HEADER];
      },
    );
  }
}
