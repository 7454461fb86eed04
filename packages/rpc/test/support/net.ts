/**
 * Test helpers for real sockets: wait for a condition (never a fixed sleep), a TCP proxy that can cut
 * or black-hole its connections (to lose replies, break connections and starve keepalives), and a raw
 * frame writer for feeding a server bad input.
 */
import net from 'node:net';
import { Writer } from '@dsys/kit';

/** Polls `predicate` every few ms until it holds; fails with `what` after `timeoutMs`. */
export async function waitFor(predicate: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const started = performance.now();
  while (!predicate()) {
    if (performance.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A loopback proxy to `target`; `cut()` destroys its live connections, `blackhole` stops forwarding replies. */
export class TcpProxy {
  readonly server: net.Server;
  private readonly pairs = new Set<[net.Socket, net.Socket]>();
  /** While true, bytes from the server are dropped (the client hears nothing). */
  blackhole = false;
  connections = 0;

  private constructor(server: net.Server) {
    this.server = server;
  }

  static async start(targetPort: number): Promise<TcpProxy> {
    const proxy: TcpProxy = new TcpProxy(
      net.createServer((client) => {
        proxy.connections++;
        const upstream = net.connect({ host: '127.0.0.1', port: targetPort });
        const pair: [net.Socket, net.Socket] = [client, upstream];
        proxy.pairs.add(pair);
        client.on('data', (chunk) => upstream.write(chunk));
        upstream.on('data', (chunk) => {
          if (!proxy.blackhole) client.write(chunk);
        });
        const close = () => {
          proxy.pairs.delete(pair);
          client.destroy();
          upstream.destroy();
        };
        client.on('close', close);
        upstream.on('close', close);
        client.on('error', () => {});
        upstream.on('error', () => {});
      }),
    );
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', () => resolve()));
    return proxy;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Destroys every live connection through the proxy (both sides). */
  cut(): void {
    for (const [client, upstream] of this.pairs) {
      client.destroy();
      upstream.destroy();
    }
    this.pairs.clear();
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A raw client socket that records what it receives and when it closes. */
export class RawClient {
  readonly socket: net.Socket;
  closed = false;
  receivedBytes = 0;
  private chunks: Buffer[] = [];

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.receivedBytes += chunk.length;
    });
    socket.on('close', () => {
      this.closed = true;
    });
    socket.on('error', () => {});
  }

  static async connect(port: number): Promise<RawClient> {
    const socket = net.connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('error', reject);
    });
    return new RawClient(socket);
  }

  /** Everything received so far. */
  get received(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }
}

/** One length-prefixed frame with the given body. */
export function frame(body: Uint8Array): Uint8Array {
  const writer = new Writer(body.length + 4);
  writer.u32(body.length);
  writer.raw(body);
  return writer.finish().slice();
}
