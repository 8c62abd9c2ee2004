import {
  type Client,
  credentials,
  makeGenericClientConstructor,
  Metadata,
  Server,
  ServerCredentials,
  type ServiceDefinition,
  status,
} from '@grpc/grpc-js';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Authenticator } from '../src/auth/authenticator';
import { AuthzPolicy } from '../src/auth/authz-policy';
import { certificatePrincipal } from '../src/auth/certificate-principal';
import type { Caller } from '../src/domain/call-context';
import { authentication, type RefusalEvent } from '../src/grpc/authentication';
import { CallContexts } from '../src/grpc/call-contexts';
import { unary } from '../src/grpc/unary-handler';
import { failure } from './support/grpc-outcomes';
import { createTestPki, type IssuedCertificate, type TestPki } from './support/certificates';
import { errorDetails } from './support/test-service';

/**
 * The principal of a client certificate: unit cases of the SAN rules, then a
 * real TLS server on 127.0.0.1:0 that verifies client certificates, with the
 * service's own call-context and authentication interceptors in front of a
 * handler that answers with the Caller it was given.
 */

describe('certificatePrincipal', () => {
  it.each([
    [
      'the SPIFFE ID, wherever it stands',
      'DNS:ui.swap.svc, URI:spiffe://residency.example/ns/swap/sa/ui',
      'spiffe://residency.example/ns/swap/sa/ui',
    ],
    [
      'else the first DNS SAN',
      'IP Address:10.0.0.1, DNS:first.example, DNS:second.example',
      'first.example',
    ],
    ['not a URI that is no SPIFFE ID', 'URI:https://ui.example/, DNS:ui.example', 'ui.example'],
    [
      'a quoted SAN as one name, not two',
      'DNS:"evil.example, URI:spiffe://forged/sa/admin"',
      'evil.example, URI:spiffe://forged/sa/admin',
    ],
    ['nobody without SANs', undefined, undefined],
    ['nobody for a malformed SAN string', 'DNS:"unterminated', undefined],
  ])('names %s', (_case, subjectaltname, principal) => {
    expect(certificatePrincipal({ subjectaltname: subjectaltname! })).toBe(principal);
  });
});

/** One RPC whose answer is the Caller the handler got, as JSON. */
const IDENTITY_SERVICE: ServiceDefinition = {
  whoAmI: {
    path: '/test.v1.Identity/WhoAmI',
    requestStream: false,
    responseStream: false,
    requestSerialize: (value: Buffer) => value,
    requestDeserialize: (bytes: Buffer) => bytes,
    responseSerialize: (value: Buffer) => value,
    responseDeserialize: (bytes: Buffer) => bytes,
  },
};
type IdentityClient = Client & {
  whoAmI(
    request: Buffer,
    metadata: Metadata,
    callback: (error: Error | null, response?: Buffer) => void,
  ): unknown;
};
const IdentityClient = makeGenericClientConstructor(IDENTITY_SERVICE, 'Identity');

describe('a TLS server that verifies client certificates', () => {
  let pki: TestPki;
  let server: Server;
  let port: number;
  const refusals: RefusalEvent[] = [];
  const clients: Client[] = [];

  beforeAll(async () => {
    pki = await createTestPki();
    const serverPair = pki.server;
    const log = pino({ level: 'silent' });
    const contexts = new CallContexts(10_000);
    server = new Server({
      interceptors: [
        contexts.interceptor,
        authentication({
          authenticator: new Authenticator({ verifier: undefined, clientCertificates: true }),
          policy: AuthzPolicy.open(),
          contexts,
          log,
          onRefused: (event) => {
            refusals.push(event);
          },
        }),
      ],
    });
    server.addService(IDENTITY_SERVICE, {
      whoAmI: unary({ contexts, log }, (_request: Buffer, ctx) =>
        Promise.resolve(Buffer.from(JSON.stringify(ctx.caller))),
      ),
    });
    port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(
        '127.0.0.1:0',
        ServerCredentials.createSsl(
          pki.ca.cert,
          [{ cert_chain: serverPair.cert, private_key: serverPair.key }],
          true,
        ),
        (error, bound) => (error ? reject(error) : resolve(bound)),
      ),
    );
  });

  afterAll(async () => {
    for (const client of clients) client.close();
    server?.forceShutdown();
    await pki?.remove();
  });

  function whoAmI(client: IssuedCertificate, metadata = new Metadata()): Promise<Caller> {
    const identity = new IdentityClient(
      `127.0.0.1:${port}`,
      credentials.createSsl(pki.ca.cert, client.key, client.cert),
      { 'grpc.use_local_subchannel_pool': 1, 'grpc.ssl_target_name_override': 'localhost' },
    ) as unknown as IdentityClient;
    clients.push(identity);
    return new Promise((resolve, reject) =>
      identity.whoAmI(Buffer.alloc(0), metadata, (error, response) =>
        error ? reject(error) : resolve(JSON.parse(response!.toString()) as Caller),
      ),
    );
  }

  it('takes the SPIFFE ID of the certificate as the principal', async () => {
    const spiffe = 'spiffe://residency.example/ns/swap/sa/scheduling-ui';
    const pair = await pki.ca.issue({
      commonName: 'scheduling-ui',
      usage: 'client',
      uris: [spiffe],
      dnsNames: ['ui.swap.svc'],
    });
    expect(await whoAmI(pair)).toMatchObject({ principal: spiffe });
  });

  it('takes the first DNS SAN when there is no SPIFFE ID, and ignores a token sent beside it', async () => {
    const pair = await pki.ca.issue({
      commonName: 'reports',
      usage: 'client',
      dnsNames: ['reports.ops.svc', 'reports'],
    });
    const metadata = new Metadata();
    metadata.set('authorization', 'Bearer not-even-a-token');
    expect(await whoAmI(pair, metadata)).toMatchObject({ principal: 'reports.ops.svc' });
  });

  it('refuses a verified certificate that names no principal as UNTRUSTED_CERTIFICATE, and reports it', async () => {
    const pair = await pki.ca.issue({ commonName: 'just-a-common-name', usage: 'client' });
    const error = await failure(whoAmI(pair));
    expect(error.code).toBe(status.UNAUTHENTICATED);
    expect(errorDetails(error).reason).toBe('UNTRUSTED_CERTIFICATE');
    expect(refusals).toEqual([
      {
        principal: undefined,
        onBehalfOf: undefined,
        peer: expect.stringMatching(/^127\.0\.0\.1:\d+$/) as string,
        method: 'test.v1.Identity/WhoAmI',
        status: status.UNAUTHENTICATED,
        reason: 'UNTRUSTED_CERTIFICATE',
      },
    ]);
  });

  it('never lets a certificate from another CA in', async () => {
    const pair = await pki.otherCa.issue({
      commonName: 'intruder',
      usage: 'client',
      uris: ['spiffe://residency.example/ns/swap/sa/ui'],
    });
    const error = await failure(whoAmI(pair));
    // The handshake fails before any call exists, so no interceptor sees it.
    expect(error.code).toBe(status.UNAVAILABLE);
  });
});
