export { type Command, helpText, runCommand, UsageError } from './command.js';
export { main, rootCommand, systems } from './main.js';
export type { SystemCluster, SystemEntry } from './systems.js';
