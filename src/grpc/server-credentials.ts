import { experimental, ServerCredentials } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { TlsConfig } from '../config';
import { CertificateWatcher } from './certificate-watcher';

/** How callers reach the server: in the clear, over TLS, or over TLS with a client certificate. */
export type TransportSecurity = 'plaintext' | 'tls' | 'mtls';

/** What the gRPC server binds its port with. */
export interface ServerTransport {
  credentials: ServerCredentials;
  security: TransportSecurity;
}

/**
 * Builds the server's credentials from `tls`: plaintext when it is absent
 * (development only: configuration refuses that in production), TLS from the
 * certificate and key files otherwise, and mTLS when a client CA is given, in
 * which case a client without a certificate chaining to it fails the
 * handshake. The files are re-read every `tls.refreshMs`, so a rotated
 * certificate or CA is served to new connections without a restart. Throws
 * (TlsFilesError) when the files cannot be used at start-up.
 */
export function createServerCredentials(tls: TlsConfig | undefined, log: Logger): ServerTransport {
  if (!tls) {
    log.warn('plaintext gRPC: no GRPC_TLS_CERT_FILE; never do this in production');
    return { credentials: ServerCredentials.createInsecure(), security: 'plaintext' };
  }
  const watcher = new CertificateWatcher({
    certFile: tls.certFile,
    keyFile: tls.keyFile,
    caFile: tls.clientCaFile,
    refreshMs: tls.refreshMs,
    log,
  });
  const mutual = tls.clientCaFile !== undefined;
  // grpc-js 1.14 declares the first two parameters as (ca, identity), but uses
  // them as (identity, ca): the first is the server's own certificate (never
  // null), the second the CA that client certificates are checked against.
  const credentials = experimental.createCertificateProviderServerCredentials(
    watcher,
    mutual ? watcher : null,
    mutual,
  );
  const security = mutual ? 'mtls' : 'tls';
  log.info(
    { security, certFile: tls.certFile, clientCaFile: tls.clientCaFile, refreshMs: tls.refreshMs },
    mutual ? 'gRPC over TLS; client certificates required' : 'gRPC over TLS',
  );
  return { credentials, security };
}
