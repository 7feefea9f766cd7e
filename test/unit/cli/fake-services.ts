/**
 * Just enough of Redis and NATS on loopback for a role to get past connecting — to what its start
 * does next (listen, or wait for the other service) — without the local infrastructure. Neither
 * stores or routes anything.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface FakeService {
  readonly url: string;
  close(): Promise<void>;
}

async function serve(handle: (socket: Socket) => void, scheme: string): Promise<FakeService> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    handle(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `${scheme}://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** The commands (RESP arrays of bulk strings) complete in `buffer`, and what is left of it. */
function commands(buffer: string): { commands: string[][]; rest: string } {
  const found: string[][] = [];
  let at = 0;
  for (;;) {
    const header = /^\*(\d+)\r\n/.exec(buffer.slice(at));
    if (header === null) break;
    let cursor = at + header[0].length;
    const args: string[] = [];
    for (let i = 0; i < Number(header[1]); i++) {
      const bulk = /^\$(\d+)\r\n/.exec(buffer.slice(cursor));
      if (bulk === null || buffer.length < cursor + bulk[0].length + Number(bulk[1]) + 2)
        return { commands: found, rest: buffer.slice(at) };
      cursor += bulk[0].length;
      args.push(buffer.slice(cursor, cursor + Number(bulk[1])));
      cursor += Number(bulk[1]) + 2;
    }
    found.push(args);
    at = cursor;
  }
  return { commands: found, rest: buffer.slice(at) };
}

/** A Redis that is ready at once (INFO says it is not loading) and answers OK to everything else. */
export function fakeRedis(): Promise<FakeService> {
  return serve((socket) => {
    let buffer = '';
    socket.on('data', (chunk: Buffer) => {
      const parsed = commands(buffer + chunk.toString('latin1'));
      buffer = parsed.rest;
      for (const [name] of parsed.commands) {
        const command = (name ?? '').toUpperCase();
        if (command === 'INFO') {
          const info = '# Server\r\nredis_version:7.2.0\r\n# Persistence\r\nloading:0\r\n';
          socket.write(`$${info.length}\r\n${info}\r\n`);
        } else if (command === 'PING') socket.write('+PONG\r\n');
        else socket.write('+OK\r\n');
      }
    });
  }, 'redis');
}

/** A NATS server that greets, accepts the connection and answers pings; it routes no message. */
export function fakeNats(): Promise<FakeService> {
  return serve((socket) => {
    const info = { server_id: 'fake', server_name: 'fake', version: '2.10.0', proto: 1, headers: true, max_payload: 1_048_576 };
    socket.write(`INFO ${JSON.stringify(info)}\r\n`);
    let buffer = '';
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      const lines = buffer.split('\r\n');
      buffer = lines.pop() ?? '';
      for (const line of lines) if (line === 'PING') socket.write('PONG\r\n');
    });
  }, 'nats');
}
