// Shared test helpers: waiting for conditions (never fixed sleeps), temp dirs, a TCP forwarder,
// and real node processes started from a TypeScript entry point.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Endpoint, parseEndpoint, tsNodeArgs } from '../../src/index.js';

/** Polls `condition` until it holds, failing after `timeoutMs` with `what`. */
export async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 20_000) {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export async function tempDir(prefix: string): Promise<{ path: string; remove(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `dsys-${prefix}-`));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/**
 * Forwards TCP connections to a target set later (the cluster harness puts a proxy like this between
 * nodes; here it also lets a test learn a node's ephemeral peer port after the others started).
 */
export class TcpForwarder {
  target: Endpoint | null = null;
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  endpoint!: Endpoint;

  private constructor(server: Server) {
    this.server = server;
  }

  static async start(): Promise<TcpForwarder> {
    let forwarder: TcpForwarder | null = null;
    const server = createServer((socket) => forwarder?.forward(socket));
    forwarder = new TcpForwarder(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    forwarder.endpoint = {
      host: '127.0.0.1',
      port: typeof address === 'object' && address !== null ? address.port : 0,
    };
    return forwarder;
  }

  private forward(inbound: Socket): void {
    if (this.target === null) {
      inbound.destroy();
      return;
    }
    const outbound = tcpConnect({ host: this.target.host, port: this.target.port });
    for (const socket of [inbound, outbound]) {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => {
        inbound.destroy();
        outbound.destroy();
      });
    }
    inbound.pipe(outbound);
    outbound.pipe(inbound);
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A node running as a child process, with its stdout lines and JSON log lines collected. */
export class NodeProcess {
  readonly child: ChildProcess;
  readonly stdout: string[] = [];
  readonly logs: Record<string, unknown>[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private stderrRest = '';
  private stdoutRest = '';

  constructor(entry: string, args: readonly string[]) {
    this.child = spawn(process.execPath, [...tsNodeArgs(), entry, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (chunk: Buffer) => {
      const lines = (this.stdoutRest + chunk.toString()).split('\n');
      this.stdoutRest = lines.pop()!;
      this.stdout.push(...lines);
    });
    this.child.stderr!.on('data', (chunk: Buffer) => {
      const lines = (this.stderrRest + chunk.toString()).split('\n');
      this.stderrRest = lines.pop()!;
      for (const line of lines) {
        try {
          this.logs.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // Not one of our JSON lines (e.g. a Node warning): keep it visible for debugging.
          this.logs.push({ raw: line });
        }
      }
    });
    this.exited = new Promise((resolve) => this.child.on('exit', (code, signal) => resolve({ code, signal })));
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Waits for the `ready: host:port` line and returns the client endpoint. */
  async ready(timeoutMs = 30_000): Promise<Endpoint> {
    let exited = false;
    void this.exited.then(() => {
      exited = true;
    });
    await waitFor(
      'ready line',
      () => {
        if (exited) throw new Error(`node exited before ready; logs: ${JSON.stringify(this.logs.slice(-5))}`);
        return this.stdout.some((line) => line.startsWith('ready: '));
      },
      timeoutMs,
    );
    const line = this.stdout.find((l) => l.startsWith('ready: '))!;
    const parsed = parseEndpoint(line.slice('ready: '.length));
    if (!parsed.ok) throw new Error(`bad ready line: ${line}`);
    return parsed.value;
  }

  /** The endpoint named `name=` on the `listening:` line (peer, client or metrics). */
  listening(name: 'peer' | 'client' | 'metrics'): Endpoint {
    const line = this.stdout.find((l) => l.startsWith('listening: '));
    const match = line === undefined ? null : new RegExp(`${name}=(\\S+)`).exec(line);
    const parsed = match === null ? null : parseEndpoint(match[1]!);
    if (parsed === null || !parsed.ok) throw new Error(`no ${name} endpoint in ${line}`);
    return parsed.value;
  }

  kill(signal: NodeJS.Signals): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
  }
}
