/**
 * The `dsys` command: one subcommand per system, `dsys sim` for the simulator, `dsys up` for
 * everything at once. Usage errors exit 2 (64 for client commands whose 2 means "outcome unknown").
 */
import { type Command, runCommand } from './command.js';
import { abdSystem } from './systems/abd.js';
import { chordSystem } from './systems/chord.js';
import { coordSystem } from './systems/coord.js';
import { kvCommand, raftSystem } from './systems/raft.js';
import { rpcCommand } from './systems/rpc.js';
import { simCommand } from './systems/sim.js';
import type { SystemEntry } from './systems.js';
import { upAllCommand } from './up.js';

export const systems: readonly SystemEntry[] = [abdSystem, chordSystem, raftSystem, coordSystem];

export function rootCommand(): Command {
  return {
    name: 'dsys',
    summary: 'classic distributed systems, built for real: run them, simulate them, break them',
    subcommands: [upAllCommand(systems), simCommand, rpcCommand, ...systems.map((entry) => entry.command), kvCommand],
    details: `Examples:
  npx dsys up                          start every system as a local cluster
  npx dsys sim --list                  systems the simulator knows
  npx dsys sim abd --seed 1            one seeded simulation run (ends with trace-hash: <hex>)
  npx dsys abd up --nodes 5            a 5-replica ABD register on local processes
  npx dsys raft up                     a 3-node Raft key-value cluster (then: dsys kv --endpoints ...)`,
  };
}

export async function main(argv: string[]): Promise<number> {
  try {
    return await runCommand(rootCommand(), argv);
  } catch (error) {
    process.stderr.write(`dsys: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    return 1;
  }
}
