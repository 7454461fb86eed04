/** `dsys rpc`: call any procedure of a running dsys RPC service, or list its interface (like grpcurl). */
import { rpcCli } from '@dsys/rpc';
import type { Command } from '../command.js';

export const rpcCommand: Command = {
  name: 'rpc',
  summary: "call a running service's procedures with JSON arguments, or list its interface",
  rawArgs: (argv) => rpcCli(argv),
};
