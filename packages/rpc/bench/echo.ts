/**
 * The echo service of the benchmark, for dsys and for grpc-js. grpc-js runs its lightest path: a generic
 * service whose (de)serializers pass the Buffer through, so no protobuf cost is charged to it.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { s } from '@dsys/kit';
import { defineInterface, unary } from '../src/index.js';

export const PAYLOAD_BYTES_MAX = 64 * 1024;

/** Non-idempotent (the default): every call goes through the at-most-once reply cache. */
export const Echo = defineInterface({
  name: 'bench',
  version: 1,
  procedures: {
    echo: unary({ args: s.bytes({ bytesMax: PAYLOAD_BYTES_MAX }), result: s.bytes({ bytesMax: PAYLOAD_BYTES_MAX }) }),
  },
});

export const EchoIdempotent = defineInterface({
  name: 'bench',
  version: 1,
  procedures: {
    echo: unary({
      args: s.bytes({ bytesMax: PAYLOAD_BYTES_MAX }),
      result: s.bytes({ bytesMax: PAYLOAD_BYTES_MAX }),
      idempotent: true,
    }),
  },
});

const peersDir = join(dirname(fileURLToPath(import.meta.url)), 'peers');

/** Installs the pinned peers (bench/peers/package.json) on first use. */
export function ensurePeers(): void {
  if (existsSync(join(peersDir, 'node_modules', '@grpc', 'grpc-js'))) return;
  console.log('installing bench peers (bench/peers/package.json) ...');
  execFileSync('npm', ['ci', '--no-fund', '--no-audit', '--silent'], { cwd: peersDir, stdio: 'inherit' });
}

// biome-ignore lint/suspicious/noExplicitAny: grpc-js is loaded from the peers folder at run time, untyped here.
export type Grpc = any;

export async function loadGrpc(): Promise<Grpc> {
  ensurePeers();
  const require = createRequire(join(peersDir, 'package.json'));
  return require('@grpc/grpc-js');
}

const identity = (buffer: Buffer): Buffer => buffer;

export function grpcEchoDefinition() {
  return {
    echo: {
      path: '/bench.Echo/Echo',
      requestStream: false,
      responseStream: false,
      requestSerialize: identity,
      requestDeserialize: identity,
      responseSerialize: identity,
      responseDeserialize: identity,
    },
  };
}
