/**
 * Bench server process: `node --import tsx bench/server.ts <dsys|grpc|bare>` serves a unary echo on a
 * free loopback port, prints `ready <port>`, answers each `cpu` line on stdin with `cpu <microseconds>`
 * (the process's CPU time so far, so the bench can charge CPU per call to each side), and exits when its
 * stdin closes. Each system runs in its own process so that client and server each get a core, as they
 * would across machines.
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

/**
 * The limit: no RPC layer, only what any request/reply server over a byte stream must do. Each received
 * chunk is split into length-prefixed frames; each frame gets its own reply frame (length, then the
 * payload copied), and the replies to one chunk leave in one write. No ids, no validation, no copies but
 * the reply itself. (Writing the received bytes back unparsed would not be a server at all.)
 */
function startBare(): Promise<number> {
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    let pending: Buffer | null = null;
    socket.on('data', (chunk: Buffer) => {
      const data: Buffer = pending === null ? chunk : Buffer.concat([pending, chunk]);
      const replies = Buffer.allocUnsafe(data.length);
      let offset = 0;
      let at = 0;
      while (data.length - offset >= 4) {
        const payloadBytes = data.readUInt32LE(offset);
        const end = offset + 4 + payloadBytes;
        if (end > data.length) break;
        replies.writeUInt32LE(payloadBytes, at);
        data.copy(replies, at + 4, offset + 4, end);
        at += 4 + payloadBytes;
        offset = end;
      }
      if (at > 0) socket.write(replies.subarray(0, at));
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
let commands = '';
process.stdin.on('data', (chunk: Buffer) => {
  commands += chunk.toString();
  for (let newline = commands.indexOf('\n'); newline >= 0; newline = commands.indexOf('\n')) {
    const command = commands.slice(0, newline);
    commands = commands.slice(newline + 1);
    if (command === 'cpu') {
      const usage = process.cpuUsage();
      process.stdout.write(`cpu ${usage.user + usage.system}\n`);
    }
  }
});
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
