import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type CryptoKey, exportJWK, generateKeyPair, SignJWT } from 'jose';

const ISSUER = 'https://bench.swap-service.invalid';
const AUDIENCE = 'swap-service';
const KID = 'bench';

/**
 * How each service mode proves who it is: a key of the bench's own, published
 * in a JWKS file (AUTH_JWKS_FILE, so nothing is fetched during a run), and a
 * bearer token per mode whose `sub` is the mode's actor, so the swap records
 * tell the modes apart.
 */
export class BenchIdentity {
  private constructor(
    private readonly dir: string,
    private readonly privateKey: CryptoKey,
  ) {}

  static async create(): Promise<BenchIdentity> {
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const dir = mkdtempSync(path.join(tmpdir(), 'swap-bench-'));
    const jwk = { ...(await exportJWK(publicKey)), kid: KID, alg: 'ES256', use: 'sig' };
    writeFileSync(path.join(dir, 'jwks.json'), JSON.stringify({ keys: [jwk] }));
    return new BenchIdentity(dir, privateKey);
  }

  /** The service variables that trust this identity's tokens. */
  get env(): Record<string, string> {
    return {
      AUTH_JWKS_FILE: path.join(this.dir, 'jwks.json'),
      AUTH_ISSUER: ISSUER,
      AUTH_AUDIENCE: AUDIENCE,
    };
  }

  /** A token for `actor`, valid for longer than any run. */
  token(actor: string): Promise<string> {
    return new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: KID })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setSubject(actor)
      .setIssuedAt()
      .setExpirationTime('12h')
      .sign(this.privateKey);
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
