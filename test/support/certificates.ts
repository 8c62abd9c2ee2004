import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { type ChannelCredentials, credentials } from '@grpc/grpc-js';

/**
 * Certificates made at test time with the machine's `openssl`, in a temporary
 * directory: two CAs, a server certificate for 127.0.0.1 and localhost, and
 * client certificates of every kind the transport and authentication tests
 * present. EC P-256 keys, so a whole set takes a few hundred milliseconds.
 */

const run = promisify(execFile);

/** The SPIFFE ID (URI SAN) of the valid client certificate: the scheduling front-end. */
export const FRONTEND_SPIFFE_ID = 'spiffe://hospital.example/ns/scheduling/sa/frontend';
/** The DNS SAN of the valid client certificate, beside its SPIFFE ID. */
export const FRONTEND_DNS_NAME = 'frontend.scheduling.svc.cluster.local';
/** The only SAN of the client certificate that has no SPIFFE ID. */
export const REPORTING_DNS_NAME = 'reporting.analytics.svc.cluster.local';

/** A certificate and its key, as PEM files and bytes. */
export interface IssuedCertificate {
  certFile: string;
  keyFile: string;
  cert: Buffer;
  key: Buffer;
  /** Upper-case hex, as X509Certificate and a TLS peer report it. */
  serial: string;
}

/** What to put in a certificate. */
export interface CertificateRequest {
  commonName: string;
  usage: 'server' | 'client';
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
  uris?: readonly string[];
  /** Valid from two days ago until yesterday. */
  expired?: boolean;
}

export interface CertificateAuthority {
  certFile: string;
  cert: Buffer;
  /** Issues a certificate signed by this CA (a new random serial each time). */
  issue(request: CertificateRequest): Promise<IssuedCertificate>;
}

export interface TestPki {
  dir: string;
  ca: CertificateAuthority;
  /** A CA the service does not trust. */
  otherCa: CertificateAuthority;
  /** For 127.0.0.1 and localhost, from `ca`. */
  server: IssuedCertificate;
  clients: {
    /** URI SAN {@link FRONTEND_SPIFFE_ID} and DNS SAN {@link FRONTEND_DNS_NAME}, from `ca`. */
    valid: IssuedCertificate;
    /** Only the DNS SAN {@link REPORTING_DNS_NAME}, from `ca`. */
    dnsOnly: IssuedCertificate;
    /** Like `valid`, but expired yesterday. */
    expired: IssuedCertificate;
    /** Like `valid`, but from `otherCa`. */
    otherCa: IssuedCertificate;
  };
  /** Deletes the directory. */
  remove(): Promise<void>;
}

/** Makes a fresh set of CAs and certificates in a temporary directory. */
export async function createTestPki(): Promise<TestPki> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'swap-pki-'));
  const ca = await createCertificateAuthority(path.join(dir, 'ca'), 'swap-service test CA');
  const otherCa = await createCertificateAuthority(path.join(dir, 'other-ca'), 'untrusted CA');
  const frontend = {
    commonName: 'frontend',
    usage: 'client',
    uris: [FRONTEND_SPIFFE_ID],
    dnsNames: [FRONTEND_DNS_NAME],
  } as const;
  return {
    dir,
    ca,
    otherCa,
    server: await ca.issue(serverCertificateRequest()),
    clients: {
      valid: await ca.issue(frontend),
      dnsOnly: await ca.issue({
        commonName: 'reporting',
        usage: 'client',
        dnsNames: [REPORTING_DNS_NAME],
      }),
      expired: await ca.issue({ ...frontend, expired: true }),
      otherCa: await otherCa.issue(frontend),
    },
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

/** What the test server's certificate holds: the names a client on this machine dials. */
export function serverCertificateRequest(): CertificateRequest {
  return {
    commonName: 'swap-service',
    usage: 'server',
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
  };
}

/**
 * The service's TLS variables for `server` (pki.server unless given); with
 * `clientCa`, client certificates are required and checked against it.
 */
export function tlsEnv(
  server: Pick<IssuedCertificate, 'certFile' | 'keyFile'>,
  clientCa?: Pick<CertificateAuthority, 'certFile'>,
): Record<string, string> {
  return {
    GRPC_TLS_CERT_FILE: server.certFile,
    GRPC_TLS_KEY_FILE: server.keyFile,
    ...(clientCa && { GRPC_TLS_CLIENT_CA_FILE: clientCa.certFile }),
  };
}

/** TLS client credentials trusting `ca`, presenting `client` when given. */
export function clientCredentials(
  ca: Pick<CertificateAuthority, 'cert'>,
  client?: Pick<IssuedCertificate, 'cert' | 'key'>,
): ChannelCredentials {
  return client
    ? credentials.createSsl(ca.cert, client.key, client.cert)
    : credentials.createSsl(ca.cert);
}

/**
 * The serial of the certificate a server on 127.0.0.1:`port` presents to a
 * new connection, read by a raw TLS handshake (offering h2, as gRPC does).
 */
export async function servedCertificateSerial(
  port: number,
  ca: Pick<CertificateAuthority, 'cert'>,
  client?: Pick<IssuedCertificate, 'cert' | 'key'>,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      // A name, not the IP: TLS's server name indication takes no addresses.
      servername: 'localhost',
      ca: ca.cert,
      ...(client && { cert: client.cert, key: client.key }),
      ALPNProtocols: ['h2'],
    });
    socket.once('secureConnect', () => {
      const serial = socket.getPeerX509Certificate()?.serialNumber;
      socket.destroy();
      if (serial) resolve(serial);
      else reject(new Error('the server presented no certificate'));
    });
    socket.once('error', reject);
  });
}

async function openssl(args: string[]): Promise<void> {
  try {
    await run('openssl', args);
  } catch (error) {
    const { stderr } = error as { stderr?: string };
    throw new Error(`openssl ${args[0]} failed: ${stderr ?? String(error)}`, { cause: error });
  }
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

async function createCertificateAuthority(
  dir: string,
  name: string,
): Promise<CertificateAuthority> {
  await mkdir(path.join(dir, 'issued'), { recursive: true });
  const certFile = path.join(dir, 'ca.crt');
  const keyFile = path.join(dir, 'ca.key');
  await openssl([
    'req',
    '-x509',
    ...EC_KEY,
    '-keyout',
    keyFile,
    '-out',
    certFile,
    '-subj',
    `/CN=${name}`,
    '-days',
    '30',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  // `openssl ca`, unlike `openssl x509`, can set a validity in the past (OpenSSL 3.0).
  const configFile = path.join(dir, 'ca.cnf');
  await writeFile(path.join(dir, 'index.txt'), '');
  await writeFile(path.join(dir, 'serial'), '1000\n');
  await writeFile(
    configFile,
    [
      '[ca]',
      'default_ca = test_ca',
      '[test_ca]',
      `database = ${path.join(dir, 'index.txt')}`,
      `new_certs_dir = ${path.join(dir, 'issued')}`,
      // Required by `openssl ca`, though -rand_serial never reads it.
      `serial = ${path.join(dir, 'serial')}`,
      `certificate = ${certFile}`,
      `private_key = ${keyFile}`,
      'default_md = sha256',
      'policy = any_name',
      'unique_subject = no',
      'copy_extensions = none',
      '[any_name]',
      'commonName = supplied',
      '',
    ].join('\n'),
  );
  let issued = 0;
  return {
    certFile,
    cert: await readFile(certFile),
    issue: async (request) => {
      const base = path.join(dir, `${++issued}-${request.commonName}`);
      const leaf = { certFile: `${base}.crt`, keyFile: `${base}.key` };
      await openssl([
        'req',
        '-new',
        ...EC_KEY,
        '-keyout',
        leaf.keyFile,
        '-out',
        `${base}.csr`,
        '-subj',
        `/CN=${request.commonName}`,
      ]);
      await writeFile(`${base}.ext`, extensions(request));
      await openssl([
        'ca',
        '-batch',
        '-config',
        configFile,
        '-in',
        `${base}.csr`,
        '-out',
        leaf.certFile,
        '-notext',
        '-rand_serial',
        '-extfile',
        `${base}.ext`,
        '-extensions',
        'leaf',
        ...(request.expired
          ? ['-startdate', asn1Time(-2), '-enddate', asn1Time(-1)]
          : ['-days', '30']),
      ]);
      const [cert, key] = await Promise.all([readFile(leaf.certFile), readFile(leaf.keyFile)]);
      return { ...leaf, cert, key, serial: new X509Certificate(cert).serialNumber };
    },
  };
}

function extensions(request: CertificateRequest): string {
  const names = [
    ...(request.dnsNames ?? []).map((n, i) => `DNS.${i + 1} = ${n}`),
    ...(request.ipAddresses ?? []).map((n, i) => `IP.${i + 1} = ${n}`),
    ...(request.uris ?? []).map((n, i) => `URI.${i + 1} = ${n}`),
  ];
  return [
    '[leaf]',
    'basicConstraints = critical, CA:FALSE',
    'keyUsage = critical, digitalSignature',
    `extendedKeyUsage = ${request.usage === 'server' ? 'serverAuth' : 'clientAuth'}`,
    'subjectKeyIdentifier = hash',
    'authorityKeyIdentifier = keyid',
    ...(names.length > 0 ? ['subjectAltName = @names', '[names]', ...names] : []),
    '',
  ].join('\n');
}

/** `openssl ca`'s UTCTime (YYMMDDHHMMSSZ), `days` from now. */
function asn1Time(days: number): string {
  const iso = new Date(Date.now() + days * 86_400_000).toISOString();
  return `${iso.slice(2, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
}
