import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type ChannelCredentials, credentials, type ServiceError, status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config';
import { capturedLog } from './support/captured-log';
import {
  clientCredentials,
  createTestPki,
  serverCertificateRequest,
  servedCertificateSerial,
  type TestPki,
  tlsEnv,
} from './support/certificates';
import { failure } from './support/grpc-outcomes';
import { checkHealth, freshHealthClient } from './support/health-client';
import type { ScheduleFixture } from './support/schedule-fixture';
import { freePort, runUntilExit, startServiceProcess } from './support/service-process';
import { waitFor } from './support/sql-fixtures';
import { fmitSwapPair } from './support/swap-pair';
import { createTestDatabase } from './support/test-database';
import {
  startTestService,
  swapClientOf,
  type TestService,
  useTestService,
} from './support/test-service';
import { DEFAULT_POLICY_FILE } from './support/access-control';

/**
 * TLS and mTLS on a real server on port 0, with certificates made for this run
 * (support/certificates.ts) and real grpc-js clients: who may connect, what a
 * refused client sees, certificates rotated on disk under load, and the start-up
 * rules (production never serves plaintext; development says that it does).
 */

let pki: TestPki;
beforeAll(async () => {
  pki = await createTestPki();
});
afterAll(async () => {
  await pki?.remove();
});

/** The gRPC status of a call that must fail before any handler runs, on a client of its own. */
async function refusedWith(ts: TestService, channel: ChannelCredentials): Promise<ServiceError> {
  const { client, api } = swapClientOf(ts, channel);
  try {
    return await failure(api.listSwaps({}));
  } finally {
    client.close();
  }
}

describe('mTLS (GRPC_TLS_CLIENT_CA_FILE set)', () => {
  let ts: TestService;
  let fx: ScheduleFixture;
  useTestService(
    (started) => ({ ts, fx } = started),
    () => tlsEnv(pki.server, pki.ca),
    () => ({ clientCredentials: clientCredentials(pki.ca, pki.clients.valid) }),
  );

  it('lets a client with a valid certificate execute a swap', async () => {
    const pair = await fmitSwapPair(fx, {
      sourceWeek: '2030-02-04',
      targetWeek: '2030-02-18',
      reason: 'over mTLS',
    });
    const { swap } = await ts.api.executeSwap(pair.request());
    expect(swap?.id).toBeTruthy();
  });

  it('lets a client whose certificate has only a DNS SAN connect', async () => {
    const { client, api } = swapClientOf(ts, clientCredentials(pki.ca, pki.clients.dnsOnly));
    try {
      expect((await api.listSwaps({})).swaps).toHaveLength(1);
    } finally {
      client.close();
    }
  });

  it.each([
    ['no client certificate', () => clientCredentials(pki.ca)],
    ['an expired client certificate', () => clientCredentials(pki.ca, pki.clients.expired)],
    ['a certificate from another CA', () => clientCredentials(pki.ca, pki.clients.otherCa)],
  ])('refuses a client with %s in the handshake, and nothing changes', async (_, channel) => {
    const pair = await fmitSwapPair(fx, {
      sourceWeek: '2030-03-04',
      targetWeek: '2030-03-18',
      reason: 'must not happen',
    });
    const before = await fx.snapshot();
    const { client, api } = swapClientOf(ts, channel());
    try {
      const error = await failure(api.executeSwap(pair.request()));
      // The handshake fails, so grpc-js never gets a connection to send the call on.
      expect(error.code).toBe(status.UNAVAILABLE);
    } finally {
      client.close();
    }
    expect(await fx.snapshot()).toEqual(before);
    expect((await ts.api.listSwaps({})).swaps).toHaveLength(1);
  });
});

describe('TLS without a client CA', () => {
  let ts: TestService;
  useTestService(
    (started) => ({ ts } = started),
    () => tlsEnv(pki.server),
    () => ({ clientCredentials: clientCredentials(pki.ca) }),
  );

  it('serves a TLS client that presents no certificate', async () => {
    expect((await ts.api.listSwaps({})).swaps).toEqual([]);
  });

  it('refuses a plaintext client', async () => {
    expect((await refusedWith(ts, credentials.createInsecure())).code).toBe(status.UNAVAILABLE);
  });

  it('is refused by a client that does not trust its CA', async () => {
    expect((await refusedWith(ts, clientCredentials(pki.otherCa))).code).toBe(status.UNAVAILABLE);
  });
});

describe('rotation (files re-read every GRPC_TLS_REFRESH_MS)', () => {
  /** The files the service is configured with, which the test overwrites. */
  let served: { certFile: string; keyFile: string; caFile: string };
  const captured = capturedLog();
  let ts: TestService;
  beforeAll(async () => {
    const dir = path.join(pki.dir, 'served');
    await mkdir(dir);
    served = {
      certFile: path.join(dir, 'tls.crt'),
      keyFile: path.join(dir, 'tls.key'),
      caFile: path.join(dir, 'ca.crt'),
    };
    await copyFile(pki.server.certFile, served.certFile);
    await copyFile(pki.server.keyFile, served.keyFile);
    await copyFile(pki.ca.certFile, served.caFile);
    ts = await startTestService(
      { ...tlsEnv(served, { certFile: served.caFile }), GRPC_TLS_REFRESH_MS: '100' },
      { clientCredentials: clientCredentials(pki.ca, pki.clients.valid), log: captured.log },
    );
  });
  afterAll(async () => {
    await ts?.close();
  });

  it('serves a certificate replaced on disk to new connections, and no call fails meanwhile', async () => {
    const servedSerial = () => servedCertificateSerial(ts.service.port, pki.ca, pki.clients.valid);
    expect(await servedSerial()).toBe(pki.server.serial);
    const next = await pki.ca.issue(serverCertificateRequest());

    // Load: calls on the service's long-lived connection, and calls that each
    // open a connection of their own (so each goes through a handshake).
    let stopping = false;
    const failures: unknown[] = [];
    let answered = 0;
    const loop = async (call: () => Promise<unknown>) => {
      while (!stopping) {
        await call().then(
          () => answered++,
          (error: unknown) => failures.push(error),
        );
      }
    };
    const onNewConnection = async () => {
      const { client, api } = swapClientOf(ts, clientCredentials(pki.ca, pki.clients.valid));
      try {
        await api.listSwaps({});
      } finally {
        client.close();
      }
    };
    const load = Promise.all([loop(() => ts.api.listSwaps({})), loop(onNewConnection)]);
    await waitFor('calls to flow', () => answered >= 10);

    // The certificate first and the key a moment later, as a plain copy writes
    // them: the service reads a certificate that its key does not fit (and may
    // read the certificate half-written, too), must refuse it, and keeps
    // serving the old pair.
    const linesBefore = captured.lines.length;
    await writeFile(served.certFile, next.cert);
    await captured.logged(
      'TLS files not usable; still serving the last good ones (a rotation caught half-written is retried at the next read)',
      linesBefore,
      (line) => /key values mismatch/.test(String(line.problem)),
    );
    const answeredWhileTorn = answered;
    await waitFor(
      'calls while the files are half-written',
      () => answered >= answeredWhileTorn + 10,
    );
    await writeFile(served.keyFile, next.key);
    await captured.logged('TLS certificate reloaded', linesBefore);
    await waitFor(
      'the new certificate to be served',
      async () => (await servedSerial()) === next.serial,
    );
    const answeredAfter = answered;
    await waitFor('calls after the rotation', () => answered >= answeredAfter + 10);

    stopping = true;
    await load;
    expect(failures).toEqual([]);
  });

  it('trusts a client CA added to the CA file, without a restart', async () => {
    const otherClient = clientCredentials(pki.ca, pki.clients.otherCa);
    expect((await refusedWith(ts, otherClient)).code).toBe(status.UNAVAILABLE);
    await writeFile(served.caFile, Buffer.concat([pki.ca.cert, pki.otherCa.cert]));
    await waitFor('the added CA to be trusted', async () => {
      const { client, api } = swapClientOf(ts, otherClient);
      try {
        return await api.listSwaps({}).then(
          () => true,
          () => false,
        );
      } finally {
        client.close();
      }
    });
  });
});

describe('GRPC_HEALTH_PORT beside an mTLS port', () => {
  let ts: TestService;
  let healthPort: number;
  // Before useTestService's own hook, which reads it.
  beforeAll(async () => {
    healthPort = await freePort();
  });
  useTestService(
    (started) => ({ ts } = started),
    () => ({ ...tlsEnv(pki.server, pki.ca), GRPC_HEALTH_PORT: String(healthPort) }),
    () => ({ clientCredentials: clientCredentials(pki.ca, pki.clients.valid) }),
  );

  it('answers health checks in plaintext, and nothing else', async () => {
    const health = freshHealthClient(`127.0.0.1:${healthPort}`);
    const { client, api } = swapClientOf(
      { address: `127.0.0.1:${healthPort}` },
      credentials.createInsecure(),
    );
    try {
      expect(await checkHealth(health, 'swap.v1.SwapService')).toBe('SERVING');
      expect((await failure(api.listSwaps({}))).code).toBe(status.UNIMPLEMENTED);
    } finally {
      health.close();
      client.close();
    }
    expect(
      await checkHealth(freshHealthClient(ts.address), '').catch((e: ServiceError) => e.code),
    ).toBe(status.UNAVAILABLE);
  });
});

describe('start-up', () => {
  const production = {
    NODE_ENV: 'production',
    DATABASE_URL: 'postgresql://swap@127.0.0.1:5432/swap',
    REDIS_URL: 'redis://127.0.0.1:6379',
    AUTHZ_POLICY_FILE: DEFAULT_POLICY_FILE,
  };

  it('refuses to start in production without TLS, naming GRPC_TLS_CERT_FILE', async () => {
    const exit = await runUntilExit({
      NODE_ENV: 'production',
      DATABASE_URL: production.DATABASE_URL,
    });
    expect(exit.code).not.toBe(0);
    expect(exit.stderr).toMatch(/^\s+GRPC_TLS_CERT_FILE: required in production/m);
  });

  it('accepts production with TLS (a CLI without), and names the missing half of a pair', () => {
    const tls = tlsEnv(pki.server, pki.ca);
    expect(loadConfig({ ...production, ...tls }).grpc.tls).toEqual({
      certFile: pki.server.certFile,
      keyFile: pki.server.keyFile,
      clientCaFile: pki.ca.certFile,
      refreshMs: 60_000,
    });
    const problem = (env: Record<string, string>) => {
      try {
        loadConfig(env);
      } catch (error) {
        if (error instanceof ConfigError) return error.message;
        throw error;
      }
      return 'no problem';
    };
    // Production also admits only authenticated callers, under a policy.
    expect(problem({ ...production, ...tls, GRPC_TLS_CLIENT_CA_FILE: '' })).toMatch(
      /^\s+GRPC_TLS_CLIENT_CA_FILE or AUTH_JWKS_URL: required in production/m,
    );
    expect(problem({ ...production, ...tls, AUTHZ_POLICY_FILE: '' })).toMatch(
      /^\s+AUTHZ_POLICY_FILE: required in production/m,
    );
    // The migration CLI serves nothing, so production asks it for no certificate.
    expect(loadConfig(production, { serves: false }).grpc.tls).toBeUndefined();
    expect(problem(production)).toMatch(/^\s+GRPC_TLS_CERT_FILE: required in production/m);
    expect(problem({ GRPC_TLS_CERT_FILE: tls.GRPC_TLS_CERT_FILE! })).toMatch(
      /^\s+GRPC_TLS_KEY_FILE: /m,
    );
    expect(problem({ GRPC_TLS_CLIENT_CA_FILE: pki.ca.certFile })).toMatch(
      /^\s+GRPC_TLS_CERT_FILE: required with GRPC_TLS_CLIENT_CA_FILE/m,
    );
  });

  it('refuses to start with a key that does not belong to the certificate', async () => {
    const database = await createTestDatabase();
    try {
      const env = {
        GRPC_TLS_CERT_FILE: pki.server.certFile,
        GRPC_TLS_KEY_FILE: pki.clients.valid.keyFile,
      };
      await expect(startTestService(env, { database })).rejects.toThrow(
        /not a usable certificate and key: .*key values mismatch/,
      );
    } finally {
      await database.drop();
    }
  });

  it('serves plaintext when no TLS is configured, and says so in exactly one line', async () => {
    const db = await createTestDatabase();
    const service = await startServiceProcess({ DATABASE_URL: db.url });
    try {
      const mentions = service.logs.filter((l) => /plaintext/i.test(JSON.stringify(l)));
      expect(mentions.map((l) => [l.level, l.msg])).toEqual([
        ['warn', 'plaintext gRPC: no GRPC_TLS_CERT_FILE; never do this in production'],
      ]);
    } finally {
      await service.stop();
      await db.drop();
    }
  });
});
