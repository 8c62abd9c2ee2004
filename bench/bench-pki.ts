import type { ChannelCredentials } from '@grpc/grpc-js';
import {
  clientCredentials,
  createTestPki,
  type IssuedCertificate,
  type TestPki,
  tlsEnv,
} from '../test/support/certificates';

/** The SPIFFE ID of the `service-secure` client certificate: the principal its swaps record. */
export const BENCH_CLIENT_SPIFFE_ID =
  'spiffe://bench.swap-service.invalid/ns/bench/sa/service-secure';

/**
 * The certificates of `service-secure`, made at bench start with the
 * machine's `openssl` in a temporary directory (the tests' own PKI helper): a
 * CA, a server certificate for 127.0.0.1 and localhost, and a client
 * certificate naming {@link BENCH_CLIENT_SPIFFE_ID}.
 */
export class BenchPki {
  private constructor(
    private readonly pki: TestPki,
    private readonly client: IssuedCertificate,
  ) {}

  static async create(): Promise<BenchPki> {
    const pki = await createTestPki();
    try {
      const client = await pki.ca.issue({
        commonName: 'bench-service-secure',
        usage: 'client',
        uris: [BENCH_CLIENT_SPIFFE_ID],
      });
      return new BenchPki(pki, client);
    } catch (error) {
      await pki.remove();
      throw error;
    }
  }

  /** The service variables that serve TLS and require client certificates from this CA. */
  get env(): Record<string, string> {
    return tlsEnv(this.pki.server, this.pki.ca);
  }

  /** Trusts this CA and presents the bench client certificate. */
  credentials(): ChannelCredentials {
    return clientCredentials(this.pki.ca, this.client);
  }

  remove(): Promise<void> {
    return this.pki.remove();
  }
}
