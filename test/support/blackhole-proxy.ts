import net from 'node:net';

/**
 * A TCP proxy in front of `targetPort`. Client bytes always pass; once armed,
 * the server's bytes are swallowed, so a reply is sent but never arrives.
 * When either side closes, so does the other. `cut` drops every connection
 * open through it at once (each side sees its socket close, as when a network
 * path fails); connections made afterwards pass again.
 */
export async function startBlackholeProxy(targetPort: number) {
  let armed = false;
  let swallowed = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((downstream) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    sockets.add(downstream).add(upstream);
    for (const socket of [downstream, upstream]) socket.once('close', () => sockets.delete(socket));
    downstream.pipe(upstream);
    upstream.on('data', (chunk: Buffer) => {
      if (armed) swallowed += chunk.length;
      else downstream.write(chunk);
    });
    const closeBoth = () => {
      downstream.destroy();
      upstream.destroy();
    };
    for (const socket of [downstream, upstream]) {
      socket.on('error', closeBoth);
      socket.on('close', closeBoth);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    arm: () => (armed = true),
    disarm: () => (armed = false),
    /** Closes every connection open through the proxy; returns how many sockets it closed. */
    cut: () => {
      const open = sockets.size;
      for (const socket of sockets) socket.destroy();
      sockets.clear();
      return open;
    },
    swallowed: () => swallowed,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export type BlackholeProxy = Awaited<ReturnType<typeof startBlackholeProxy>>;
