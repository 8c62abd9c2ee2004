import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Metadata } from '@grpc/grpc-js';
import {
  base64url,
  type CryptoKey,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  type JWK,
  type JWTPayload,
  SignJWT,
} from 'jose';
import { UnauthenticatedError } from '../../src/domain/errors';

/** One signing key and the kid it is published (or not) under. */
interface SigningKey {
  kid: string;
  alg: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
  publicPem: string;
}

export interface SignOptions {
  /** The `alg` header; the key's own unless given (HS256 is signed with the public key's PEM). */
  alg?: string;
  /** The `kid` header; the key's own unless given. */
  kid?: string;
  /** Sign with a key that the JWKS endpoint never publishes. */
  unpublished?: boolean;
  /**
   * Sign with the key of this kid, published (see {@link JwtIssuer.rotate}) or
   * withdrawn (see {@link JwtIssuer.withdraw}); the first published unless given.
   */
  key?: string;
}

const ISSUER = 'https://id.residency.test';
const AUDIENCE = 'swap-service';

/**
 * A test identity provider: RSA keys made with jose, a JWKS endpoint on
 * 127.0.0.1:0 (plain node:http) that counts how often it is fetched, and
 * tokens signed with whatever claims, algorithm and kid a test asks for.
 */
export class JwtIssuer {
  readonly issuer = ISSUER;
  readonly audience = AUDIENCE;
  /** How many times the JWKS endpoint was fetched. */
  jwksFetches = 0;

  private readonly server = http.createServer((request, response) => {
    if (request.url !== '/jwks.json') {
      response.writeHead(404).end();
      return;
    }
    this.jwksFetches += 1;
    response
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify(this.jwks()));
  });

  /** Keys taken out of the key set: tokens can still be signed with them. */
  private readonly withdrawn: SigningKey[] = [];

  private constructor(
    private readonly published: SigningKey[],
    private readonly unpublished: SigningKey,
  ) {}

  static async start(): Promise<JwtIssuer> {
    const issuer = new JwtIssuer([await signingKey('RS256')], await signingKey('RS256'));
    await new Promise<void>((resolve) => issuer.server.listen(0, '127.0.0.1', resolve));
    return issuer;
  }

  get jwksUrl(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/jwks.json`;
  }

  /** The AUTH_* variables of a service that trusts this issuer. */
  env(): Record<string, string> {
    return { AUTH_JWKS_URL: this.jwksUrl, AUTH_ISSUER: ISSUER, AUTH_AUDIENCE: AUDIENCE };
  }

  /** The key set the endpoint serves. */
  jwks(): { keys: JWK[] } {
    return { keys: this.published.map((k) => k.publicJwk) };
  }

  /** Publishes another key (a rotation); tokens signed with `options.kid` of it verify once fetched. */
  async rotate(): Promise<string> {
    const key = await signingKey('ES256');
    this.published.push(key);
    return key.kid;
  }

  /** The kids the endpoint publishes, the default signing key's first. */
  get kids(): string[] {
    return this.published.map((k) => k.kid);
  }

  /** Takes the key of `kid` out of the key set, as an identity provider does when it retires or revokes one. */
  withdraw(kid: string): void {
    const index = this.published.findIndex((k) => k.kid === kid);
    if (index < 0) throw new Error(`no published key ${kid}`);
    this.withdrawn.push(...this.published.splice(index, 1));
  }

  /**
   * A token for `sub` with `roles`, valid for five minutes; `claims` replace
   * or add claims (`undefined` removes one), `options` the header and key.
   */
  async token(
    sub: string,
    roles: readonly string[] = [],
    claims: Record<string, unknown> = {},
    options: SignOptions = {},
  ): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const payload: JWTPayload = {
      iss: ISSUER,
      aud: AUDIENCE,
      sub,
      roles: [...roles],
      iat: now,
      nbf: now,
      exp: now + 300,
      jti: randomUUID(),
      ...claims,
    };
    for (const [name, value] of Object.entries(payload))
      if (value === undefined) delete payload[name];
    return this.sign(payload, options);
  }

  /** Signs `payload` as it is. */
  async sign(payload: JWTPayload, options: SignOptions = {}): Promise<string> {
    const key = options.unpublished
      ? this.unpublished
      : ([...this.published, ...this.withdrawn].find((k) => k.kid === options.key) ??
        this.published[0]!);
    const alg = options.alg ?? key.alg;
    const header = { alg, kid: options.kid ?? key.kid, typ: 'JWT' };
    if (alg === 'none') {
      return `${encode(header)}.${encode(payload)}.`;
    }
    const jwt = new SignJWT(payload).setProtectedHeader(header);
    // The classic confusion attack: HMAC keyed with the public key a verifier holds.
    return alg.startsWith('HS')
      ? jwt.sign(new TextEncoder().encode(key.publicPem))
      : jwt.sign(key.privateKey);
  }

  /** Metadata that carries `token` as `authorization: Bearer …`. */
  static bearer(token: string, metadata = new Metadata()): Metadata {
    metadata.set('authorization', `Bearer ${token}`);
    return metadata;
  }

  /** Bearer metadata of a fresh valid token for `sub` with `roles`. */
  async metadataFor(sub: string, roles: readonly string[] = []): Promise<Metadata> {
    return JwtIssuer.bearer(await this.token(sub, roles));
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

async function signingKey(alg: 'RS256' | 'ES256'): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const kid = `${alg.toLowerCase()}-${randomUUID().slice(0, 8)}`;
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, alg, privateKey, publicJwk, publicPem: await exportSPKI(publicKey) };
}

function encode(part: object): string {
  return base64url.encode(JSON.stringify(part));
}

/** The reason of the refusal a verification ends in; throws if it does not end in one. */
export async function refusalReasonOf(verifying: Promise<unknown>): Promise<string> {
  const error = await verifying.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof UnauthenticatedError))
    throw new Error(`expected a refusal, got ${String(error)}`);
  return error.reason;
}
