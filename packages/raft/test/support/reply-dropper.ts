/**
 * A TCP proxy that forwards every byte from the client but only the first `framesForwarded`
 * length-prefixed frames (u32 little-endian length, then the body) from the server: the way to make a
 * request reach the server while its answer is lost, so that the client cannot know the outcome.
 */
import net from 'node:net';

export interface ReplyDropper {
  readonly endpoint: string;
  close(): Promise<void>;
}

export async function startReplyDropper(target: string, framesForwarded: number): Promise<ReplyDropper> {
  const [host, port] = target.split(':') as [string, string];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect({ host, port: Number(port) });
    sockets.add(client);
    sockets.add(upstream);
    let buffered = Buffer.alloc(0);
    let frames = 0;
    client.on('data', (chunk) => upstream.write(chunk));
    upstream.on('data', (chunk) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (frames < framesForwarded && buffered.length >= 4) {
        const length = 4 + buffered.readUInt32LE(0);
        if (buffered.length < length) break;
        client.write(buffered.subarray(0, length));
        buffered = buffered.subarray(length);
        frames++;
      }
      if (frames >= framesForwarded) buffered = Buffer.alloc(0);
    });
    const close = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', close);
    upstream.on('close', close);
    client.on('error', close);
    upstream.on('error', close);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as net.AddressInfo;
  return {
    endpoint: `127.0.0.1:${address.port}`,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
