import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { createHash, X509Certificate } from 'node:crypto';
import { experimental } from '@grpc/grpc-js';
import type { Logger } from 'pino';

type CaUpdate = experimental.CaCertificateUpdate;
type IdentityUpdate = experimental.IdentityCertificateUpdate;
type CaListener = experimental.CaCertificateUpdateListener;
type IdentityListener = experimental.IdentityCertificateUpdateListener;

export interface CertificateWatcherOptions {
  certFile: string;
  keyFile: string;
  /** Absent: no CA is watched (TLS without client certificates). */
  caFile: string | undefined;
  refreshMs: number;
  log: Logger;
}

/** The TLS files cannot be used: unreadable, not PEM, or a key that does not fit the certificate. */
export class TlsFilesError extends Error {
  override name = 'TlsFilesError';
}

/**
 * The server's TLS material, re-read from disk every `refreshMs` by grpc-js's
 * own FileWatcherCertificateProvider, with one difference: only usable
 * material is passed on. grpc-js takes whatever the files hold at the moment it
 * reads them; a certificate read before its new key is written (a rotation is
 * two files, and the watcher reads them at two moments) makes it drop every new
 * connection until the next read. Here such a read is refused and the last good
 * pair keeps being served, so a rotation never turns a client away. The first
 * read happens in the constructor and throws, so a bad file stops the start
 * instead of a server that accepts no connection.
 */
export class CertificateWatcher implements experimental.CertificateProvider {
  private readonly files: experimental.FileWatcherCertificateProvider;
  private identity: IdentityUpdate;
  private ca: CaUpdate | undefined;
  private readonly identityListeners = new Set<IdentityListener>();
  private readonly caListeners = new Set<CaListener>();
  /** What was last refused, so a file that stays bad is reported once, not on every read. */
  private lastRefused = '';

  constructor(private readonly options: CertificateWatcherOptions) {
    const read = (file: string) => {
      try {
        return readFileSync(file);
      } catch (error) {
        throw new TlsFilesError(`cannot read ${file}: ${(error as Error).message}`);
      }
    };
    const identity = { certificate: read(options.certFile), privateKey: read(options.keyFile) };
    const identityProblem = problemWithIdentity(identity);
    if (identityProblem) {
      throw new TlsFilesError(
        `${options.certFile} and ${options.keyFile} are not a usable certificate and key: ${identityProblem}`,
      );
    }
    this.identity = identity;
    if (options.caFile) {
      const ca = { caCertificate: read(options.caFile) };
      const caProblem = problemWithCa(ca);
      if (caProblem)
        throw new TlsFilesError(`${options.caFile} is not a usable CA bundle: ${caProblem}`);
      this.ca = ca;
    }
    this.files = new experimental.FileWatcherCertificateProvider({
      certificateFile: options.certFile,
      privateKeyFile: options.keyFile,
      caCertificateFile: options.caFile,
      refreshIntervalMs: options.refreshMs,
    });
    options.log.info(certificateSummary(identity), 'TLS certificate loaded');
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.subscribeIfFirst();
    this.identityListeners.add(listener);
    process.nextTick(listener, this.identity);
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener);
    this.unsubscribeIfLast();
  }

  addCaCertificateListener(listener: CaListener): void {
    this.subscribeIfFirst();
    this.caListeners.add(listener);
    process.nextTick(listener, this.ca ?? null);
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener);
    this.unsubscribeIfLast();
  }

  // The file watcher's timer runs only while a server listens, so a stopped
  // server leaves nothing behind that keeps the process alive.
  private subscribeIfFirst(): void {
    if (this.identityListeners.size + this.caListeners.size > 0) return;
    this.files.addIdentityCertificateListener(this.onIdentityRead);
    if (this.options.caFile) this.files.addCaCertificateListener(this.onCaRead);
  }

  private unsubscribeIfLast(): void {
    if (this.identityListeners.size + this.caListeners.size > 0) return;
    this.files.removeIdentityCertificateListener(this.onIdentityRead);
    if (this.options.caFile) this.files.removeCaCertificateListener(this.onCaRead);
  }

  private readonly onIdentityRead = (update: IdentityUpdate | null): void => {
    if (
      update &&
      update.certificate.equals(this.identity.certificate) &&
      update.privateKey.equals(this.identity.privateKey)
    ) {
      return;
    }
    const problem = update ? problemWithIdentity(update) : 'a file cannot be read';
    if (!update || problem) {
      this.refuse(`${this.options.certFile}, ${this.options.keyFile}`, problem ?? '', update);
      return;
    }
    this.identity = update;
    this.lastRefused = '';
    this.options.log.info(certificateSummary(update), 'TLS certificate reloaded');
    for (const listener of this.identityListeners) listener(update);
  };

  private readonly onCaRead = (update: CaUpdate | null): void => {
    if (update && this.ca && update.caCertificate.equals(this.ca.caCertificate)) return;
    const problem = update ? problemWithCa(update) : 'the file cannot be read';
    if (!update || problem) {
      this.refuse(this.options.caFile ?? '', problem ?? '', update);
      return;
    }
    this.ca = update;
    this.lastRefused = '';
    this.options.log.info({ caFile: this.options.caFile }, 'TLS client CA reloaded');
    for (const listener of this.caListeners) listener(update);
  };

  private refuse(files: string, problem: string, update: IdentityUpdate | CaUpdate | null): void {
    const hash = createHash('sha256').update(files).update(problem);
    if (update) for (const part of Object.values(update) as Buffer[]) hash.update(part);
    const key = hash.digest('hex');
    if (key === this.lastRefused) return;
    this.lastRefused = key;
    this.options.log.warn(
      { files, problem },
      'TLS files not usable; still serving the last good ones (a rotation caught half-written is retried at the next read)',
    );
  }
}

/** Why a certificate and key cannot serve, or undefined when they can. */
function problemWithIdentity(update: IdentityUpdate): string | undefined {
  try {
    // Throws on anything OpenSSL would refuse: not PEM, truncated, a key of another certificate.
    createSecureContext({ cert: update.certificate, key: update.privateKey });
    new X509Certificate(update.certificate);
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Why a CA bundle cannot verify clients, or undefined when it can. */
function problemWithCa(update: CaUpdate): string | undefined {
  // OpenSSL ignores what it cannot parse in a CA bundle, so a truncated or
  // empty file would quietly make every client certificate untrusted.
  const text = update.caCertificate.toString('utf8');
  const blocks = text.match(PEM_CERTIFICATE) ?? [];
  const begun = text.split('-----BEGIN CERTIFICATE-----').length - 1;
  if (blocks.length === 0) return 'no PEM certificate in it';
  if (blocks.length !== begun) return 'a certificate in it is cut short';
  try {
    for (const block of blocks) new X509Certificate(block);
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

function certificateSummary(update: IdentityUpdate) {
  const certificate = new X509Certificate(update.certificate);
  return {
    serial: certificate.serialNumber,
    subject: certificate.subject,
    validTo: new Date(certificate.validTo).toISOString(),
  };
}
