/**
 * Test helpers: the command line of the fixture node, and a one-line request/response client.
 */
import { createConnection } from 'node:net';
import { fileURLToPath } from 'node:url';
import { formatEndpoint, formatPeers, type NodeSpec, type ProcessCommand, parseEndpoint } from '../src/index.js';

export const RELAY_NODE = fileURLToPath(new URL('./fixtures/relay-node.mjs', import.meta.url));

/** The fixture node's command, in the flag convention of dsys nodes. */
export function relayCommand(extra: readonly string[] = []): (node: NodeSpec) => ProcessCommand {
  return (node) => ({
    command: process.execPath,
    args: [
      RELAY_NODE,
      '--id',
      String(node.id),
      '--listen-peer',
      formatEndpoint(node.peerAddress),
      '--listen-client',
      formatEndpoint(node.clientAddress),
      '--peers',
      formatPeers(node.peers),
      '--data-dir',
      node.dataDir,
      ...extra,
    ],
  });
}

/** Sends one line to a `host:port` endpoint and resolves with the first reply line. */
export function request(endpoint: string, line: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(parseEndpoint(endpoint));
    let buffer = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(Object.assign(new Error(`request "${line}" to ${endpoint} timed out`), { code: 'ETIMEDOUT' }));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(`${line}\n`));
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      const newline = buffer.indexOf('\n');
      if (newline < 0) return;
      clearTimeout(timer);
      socket.destroy();
      resolve(buffer.slice(0, newline));
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      reject(new Error(`connection to ${endpoint} closed before a reply to "${line}"`));
    });
  });
}
