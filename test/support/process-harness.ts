import { randomUUID } from 'node:crypto';
import { credentials } from '@grpc/grpc-js';
import { SwapServiceClient } from '../../src/generated/swap/v1/swap';
import { type BlackholeProxy, startBlackholeProxy } from './blackhole-proxy';
import { type ProcessExit, type ServiceProcess, startServiceProcess } from './service-process';
import { waitFor } from './sql-fixtures';

/**
 * Service processes on one database, clients of them and the proxies in
 * between, all ended by `close()` (in afterAll, so no child outlives a
 * failed test).
 */
export class ProcessHarness {
  private readonly children: ServiceProcess[] = [];
  private readonly clients: SwapServiceClient[] = [];
  private readonly proxies: BlackholeProxy[] = [];

  /** `databaseUrl` is read when a process starts, so the database may be made later. */
  constructor(private readonly databaseUrl: () => string) {}

  /** A process with Redis when the runner has it, and Redis keys of its own. */
  async serve(env: Record<string, string> = {}): Promise<ServiceProcess> {
    const child = await startServiceProcess(
      {
        DATABASE_URL: this.databaseUrl(),
        LOCK_KEY_PREFIX: `k${randomUUID().slice(0, 8)}`,
        ...env,
      },
      { inherit: ['REDIS_URL'] },
    );
    this.children.push(child);
    return child;
  }

  clientOf(port: number): SwapServiceClient {
    const client = new SwapServiceClient(`127.0.0.1:${port}`, credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
    });
    this.clients.push(client);
    return client;
  }

  /**
   * Sends one call to `child` through a proxy that swallows the reply, waits
   * until `committed` holds, then SIGKILLs the child: the call committed and
   * its caller never heard. Resolves to how the child ended and what the
   * caller got instead.
   */
  async crashBeforeReply<T>(
    child: ServiceProcess,
    send: (client: SwapServiceClient) => Promise<T>,
    committed: () => Promise<boolean>,
  ): Promise<{ exit: ProcessExit; answer: T }> {
    const proxy = await startBlackholeProxy(child.port);
    this.proxies.push(proxy);
    const viaProxy = this.clientOf(proxy.port);
    // Open the HTTP/2 connection through the proxy while replies still pass.
    await new Promise<void>((resolve, reject) =>
      viaProxy.waitForReady(new Date(Date.now() + 10_000), (e) => (e ? reject(e) : resolve())),
    );
    proxy.arm();
    const lost = send(viaProxy);
    await waitFor('the call to commit', committed);
    child.kill('SIGKILL');
    return { exit: await child.exited, answer: await lost };
  }

  async close(): Promise<void> {
    for (const client of this.clients) client.close();
    for (const child of this.children) child.kill('SIGKILL');
    await Promise.all(this.children.map((c) => c.exited));
    await Promise.all(this.proxies.map((p) => p.close()));
  }
}
