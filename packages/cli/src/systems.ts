/**
 * The systems the CLI knows. Each contributes a `dsys <name> ...` command tree, and those that run
 * as real processes a `cluster` that `dsys <name> up` and `dsys up` start.
 */
import type { Cluster } from '@dsys/harness';
import type { UpOptions } from './cluster-up.js';
import type { Command } from './command.js';

export interface SystemCluster {
  readonly nodesDefault: number;
  readonly nodesMax: number;
  /** Ports: node i serves clients on basePort+i-1 and peers on basePort+100+i-1. */
  readonly basePortDefault: number;
  start(options: UpOptions): Promise<Cluster>;
  /** Printed under the ready line: how a user reaches the running cluster. */
  howToReach(cluster: Cluster): string;
}

export interface SystemEntry {
  readonly name: string;
  readonly summary: string;
  readonly command: Command;
  readonly cluster?: SystemCluster;
}
