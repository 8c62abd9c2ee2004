import net from 'node:net';

/**
 * A TCP proxy between one replica and PostgreSQL or Redis that can add latency
 * to every chunk, drop every open connection, or partition: while partitioned
 * it drops what is open and black-holes new connections (accepted, never
 * answered), as a network that silently loses packets would. The target port
 * is read for each new connection, so a restarted server may move.
 */
export class FaultProxy {
  private latencyMs = 0;
  private partitioned = false;
  private readonly pairs = new Set<{ down: net.Socket; up?: net.Socket }>();
  private readonly held = new Set<net.Socket>();

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  static async start(targetPort: () => number): Promise<FaultProxy> {
    const ready: { proxy?: FaultProxy } = {};
    const server = net.createServer((down) => ready.proxy?.accept(down, targetPort()));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    ready.proxy = new FaultProxy(server, (server.address() as net.AddressInfo).port);
    return ready.proxy;
  }

  /** Delays every chunk, both ways, by `ms` (0: none), keeping each direction in order. */
  setLatency(ms: number): void {
    this.latencyMs = ms;
  }

  /** Closes every connection open now; new ones pass. */
  dropConnections(): void {
    for (const pair of this.pairs) {
      pair.down.destroy();
      pair.up?.destroy();
    }
  }

  /** Drops every connection and black-holes new ones until {@link heal}. */
  partition(): void {
    this.partitioned = true;
    this.dropConnections();
  }

  /** Ends a partition (closing the black-holed connections) and any latency. */
  heal(): void {
    this.partitioned = false;
    this.latencyMs = 0;
    for (const socket of this.held) socket.destroy();
    this.held.clear();
  }

  /** The local ports of the connections open to the target now, to tell whose a server session is. */
  upstreamPorts(): number[] {
    return [...this.pairs].flatMap((p) => (p.up?.localPort ? [p.up.localPort] : []));
  }

  async close(): Promise<void> {
    this.heal();
    this.dropConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(down: net.Socket, targetPort: number): void {
    down.on('error', () => down.destroy());
    if (this.partitioned) {
      this.held.add(down);
      down.on('close', () => this.held.delete(down));
      down.resume();
      return;
    }
    const up = net.connect(targetPort, '127.0.0.1');
    const pair = { down, up };
    this.pairs.add(pair);
    const closeBoth = () => {
      down.destroy();
      up.destroy();
      this.pairs.delete(pair);
    };
    for (const socket of [down, up]) {
      socket.on('error', closeBoth);
      socket.on('close', closeBoth);
    }
    this.forward(down, up);
    this.forward(up, down);
  }

  /** Copies `from` to `to`, each chunk no sooner than the latency after it arrived, in order. */
  private forward(from: net.Socket, to: net.Socket): void {
    let due = 0;
    from.on('data', (chunk: Buffer) => {
      if (this.latencyMs === 0 && due <= Date.now()) {
        to.write(chunk);
        return;
      }
      due = Math.max(due, Date.now() + this.latencyMs);
      setTimeout(() => to.destroyed || to.write(chunk), due - Date.now());
    });
  }
}
