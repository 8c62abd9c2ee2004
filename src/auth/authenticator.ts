import type { PeerCertificate } from 'node:tls';
import { UnauthenticatedError } from '../domain/errors';
import { certificatePrincipal } from './certificate-principal';
import { ANONYMOUS, type Identity } from './identity';
import type { JwtVerifier } from './jwt-verifier';

/** What a call presents to prove who it is. */
export interface Credentials {
  /** The client certificate the TLS handshake verified against the client CA, if any. */
  certificate: Pick<PeerCertificate, 'subjectaltname'> | undefined;
  /** Every `authorization` header the call carries (one is expected). */
  authorization: readonly string[];
}

export interface AuthenticatorOptions {
  /** Verifies bearer tokens; absent: tokens are not a way in. */
  verifier: Pick<JwtVerifier, 'verify'> | undefined;
  /** The server verifies client certificates (a client CA is configured). */
  clientCertificates: boolean;
}

const BEARER = /^Bearer +(\S+)$/i;

/**
 * Turns a call's credentials into an identity. A verified client certificate
 * names the principal; without one, a valid bearer token does. Authentication
 * is on when either way is configured: a call that proves nothing is then
 * refused (UNAUTHENTICATED); while it is off, every call is `anonymous`.
 */
export class Authenticator {
  /** Whether a call must prove who it is. */
  readonly required: boolean;

  constructor(private readonly options: AuthenticatorOptions) {
    this.required = options.clientCertificates || options.verifier !== undefined;
  }

  /** The ways a caller can prove who it is, for the start-up log. */
  get methods(): string[] {
    return [
      ...(this.options.clientCertificates ? ['client certificate'] : []),
      ...(this.options.verifier ? ['bearer JWT'] : []),
    ];
  }

  async authenticate(credentials: Credentials): Promise<Identity> {
    // The certificate was checked by the handshake; it wins over any token sent beside it.
    if (credentials.certificate) {
      const principal = certificatePrincipal(credentials.certificate);
      if (!principal) {
        throw new UnauthenticatedError(
          'UNTRUSTED_CERTIFICATE',
          'the client certificate names no principal: it needs a spiffe:// URI SAN or a DNS SAN',
        );
      }
      return { principal, tokenRoles: [] };
    }
    const { verifier } = this.options;
    if (!this.required) return ANONYMOUS;
    if (credentials.authorization.length === 0 || !verifier) {
      throw new UnauthenticatedError(
        'MISSING_CREDENTIALS',
        `the call must prove who is calling: ${this.methods.join(' or ')}`,
      );
    }
    const [header, ...more] = credentials.authorization;
    const token = more.length === 0 ? BEARER.exec(header!)?.[1] : undefined;
    if (!token) {
      throw new UnauthenticatedError(
        'INVALID_TOKEN',
        'the call must carry one authorization header of the form "Bearer <token>"',
      );
    }
    return verifier.verify(token);
  }
}
