import { connect, createServer, type Socket } from 'node:net';

/** A TCP relay on loopback to `host:port`, which a test can cut off without closing anything. */
export interface TcpRelay {
  /** The relay's own port on 127.0.0.1. */
  readonly port: number;
  /** From now on every byte in either direction is dropped; connections stay open (a link that silently loses packets). */
  blackhole(): void;
  /** From now on the server's replies are dropped, the client's requests still delivered (the server acts, the client never hears). */
  blackholeReplies(): void;
  /** Closes every connection, and every new one at once (a server restarting: its clients see errors, not silence). */
  refuse(): void;
  /** Relays again: the connections that lost bytes are closed (their peers see an error), new ones are relayed (and accepted). */
  restore(): void;
  close(): Promise<void>;
}

export async function tcpRelay(host: string, port: number): Promise<TcpRelay> {
  let dropping = false;
  let droppingReplies = false;
  let refusing = false;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    const upstream = connect(port, host);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => sockets.delete(socket));
    }
    client.on('data', (data) => void (dropping || upstream.write(data)));
    upstream.on('data', (data) => void (dropping || droppingReplies || client.write(data)));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    blackhole: () => void (dropping = true),
    blackholeReplies: () => void (droppingReplies = true),
    refuse: () => {
      refusing = true;
      for (const socket of sockets) socket.destroy();
    },
    restore: () => {
      for (const socket of sockets) socket.destroy();
      dropping = false;
      droppingReplies = false;
      refusing = false;
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
