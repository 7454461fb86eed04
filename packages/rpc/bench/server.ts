/**
 * Bench server process: `node --import tsx bench/server.ts <dsys|grpc|bare>` serves a unary echo on a
 * free loopback port, prints `ready <port>`, and exits when its stdin closes. Each system runs in its own
 * process so that client and server each get a core, as they would across machines.
 */
import net from 'node:net';
import { serve } from '../src/index.js';
import { Echo, EchoIdempotent, grpcEchoDefinition, loadGrpc } from './echo.js';

const kind = process.argv[2];

async function start(): Promise<number> {
  switch (kind) {
    case 'dsys': {
      const server = await serve(Echo, { echo: (bytes) => bytes });
      return server.port;
    }
    case 'dsys-async': {
      const server = await serve(Echo, { echo: async (bytes) => bytes });
      return server.port;
    }
    case 'dsys-idempotent': {
      const server = await serve(EchoIdempotent, { echo: (bytes) => bytes });
      return server.port;
    }
    case 'grpc':
      return startGrpc();
    case 'bare':
      return startBare();
    default:
      throw new Error(`unknown server kind ${kind}`);
  }
}

async function startGrpc(): Promise<number> {
  const grpc = await loadGrpc();
  const server = new grpc.Server();
  server.addService(grpcEchoDefinition(), {
    echo: (call: { request: Buffer }, callback: (error: null, reply: Buffer) => void) => callback(null, call.request),
  });
  return new Promise((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error: Error | null, port: number) => {
      if (error) reject(error);
      else resolve(port);
    });
  });
}

/** The limit: length-prefixed frames echoed back with no RPC layer, one write per received chunk. */
function startBare(): Promise<number> {
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    let pending: Buffer | null = null;
    socket.on('data', (chunk: Buffer) => {
      const data: Buffer = pending === null ? chunk : Buffer.concat([pending, chunk]);
      let offset = 0;
      while (data.length - offset >= 4) {
        const end = offset + 4 + data.readUInt32LE(offset);
        if (end > data.length) break;
        offset = end;
      }
      if (offset > 0) socket.write(data.subarray(0, offset));
      pending = offset < data.length ? data.subarray(offset) : null;
    });
    socket.on('error', () => {});
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)),
  );
}

const port = await start();
process.stdout.write(`ready ${port}\n`);
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
