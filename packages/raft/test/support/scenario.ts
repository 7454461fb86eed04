/**
 * Scenario files in the style of etcd-io/raft's interaction tests (`testdata/*.txt`): a prose header,
 * then blocks of `command` / `----` / expected transcript, separated by blank lines. The runner drives
 * a `CoreCluster` and compares each block's transcript with the file; `UPDATE_GOLDEN=1` rewrites the
 * transcripts instead (review the diff).
 *
 * Commands:
 *   cluster 1 2 3 [voters=1,2] [prevote] [checkquorum] [lease] [election=10] [heartbeat=1]
 *           [maxsize=BYTES] [inflight=N] [chunk=BYTES] [lag=ENTRIES] [bug=NAME] [seed=N]
 *   campaign N | tick N [times] | tick-all [times] (delivering between rounds) | stabilize
 *   deliver [A->B] | drop [A->B]
 *   propose N TEXT | read N ID | reads N | transfer N M | conf N add-learner|add-voter|remove M
 *   partition 1 2 | 3 | cut A B | heal | crash N | restart N | compact N | hold N | release N
 *   status | log N | applied N | raw-status N
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { NodeId } from '@dsys/kit';
import type { ConfChange, RaftConfig, TestOnlyBugs } from '../../src/index.js';
import { CoreCluster } from './core-cluster.js';

interface Block {
  readonly comments: string[];
  readonly command: string;
  readonly expected: string[];
}

export function parseScenario(text: string): { header: string[]; blocks: Block[] } {
  const lines = text.split('\n');
  const header: string[] = [];
  let at = 0;
  // The header is the opening run of comment lines; a blank line ends it.
  while (at < lines.length && lines[at]!.startsWith('#')) header.push(lines[at++]!);
  const blocks: Block[] = [];
  let comments: string[] = [];
  while (at < lines.length) {
    const line = lines[at]!;
    if (line.trim() === '') {
      at++;
      continue;
    }
    if (line.startsWith('#')) {
      comments.push(line);
      at++;
      continue;
    }
    const command = line;
    at++;
    if (lines[at] !== '----') throw new Error(`scenario: "${command}" is not followed by ----`);
    at++;
    const expected: string[] = [];
    while (at < lines.length && lines[at]!.trim() !== '') expected.push(lines[at++]!);
    blocks.push({ comments, command, expected });
    comments = [];
  }
  return { header, blocks };
}

export function formatScenario(
  header: readonly string[],
  blocks: readonly { comments: string[]; command: string; output: string[] }[],
): string {
  const parts: string[] = [header.join('\n')];
  for (const block of blocks) parts.push([...block.comments, block.command, '----', ...block.output].join('\n'));
  return `${parts.join('\n\n')}\n`;
}

function parseCluster(args: string[]): CoreCluster {
  const ids: number[] = [];
  const config: Record<string, unknown> = {};
  let voters: number[] | undefined;
  let seed = 1;
  const bugs: Record<string, boolean> = {};
  for (const arg of args) {
    if (/^\d+$/.test(arg)) ids.push(Number(arg));
    else if (arg === 'prevote') config.preVote = true;
    else if (arg === 'checkquorum') config.checkQuorum = true;
    else if (arg === 'lease') config.readOnly = 'lease';
    else {
      const [key, value] = arg.split('=') as [string, string];
      if (key === 'voters') voters = value.split(',').map(Number);
      else if (key === 'election') config.electionTicks = Number(value);
      else if (key === 'heartbeat') config.heartbeatTicks = Number(value);
      else if (key === 'maxsize') config.maxSizePerMsgBytes = Number(value);
      else if (key === 'inflight') config.maxInflightMsgs = Number(value);
      else if (key === 'chunk') config.snapshotChunkBytes = Number(value);
      else if (key === 'lag') config.promotionLagEntriesMax = Number(value);
      else if (key === 'bug') bugs[value] = true;
      else if (key === 'seed') seed = Number(value);
      else throw new Error(`cluster: unknown option ${arg}`);
    }
  }
  if (Object.keys(bugs).length > 0) config.testOnlyBugs = bugs as TestOnlyBugs;
  return new CoreCluster(ids, {
    config: config as Partial<RaftConfig>,
    seed,
    ...(voters === undefined ? {} : { voters }),
  });
}

function linkFilter(spec: string | undefined): (wire: { from: number; to: number }) => boolean {
  if (spec === undefined || spec === 'all') return () => true;
  const [from, to] = spec.split('->').map(Number);
  return (wire) => wire.from === from && wire.to === to;
}

/** Runs one command; returns its transcript. */
export class ScenarioRunner {
  cluster: CoreCluster | null = null;

  run(command: string): string[] {
    const [verb, ...args] = command.trim().split(/\s+/) as [string, ...string[]];
    if (verb === 'cluster') {
      this.cluster = parseCluster(args);
      return ['ok'];
    }
    const cluster = this.cluster;
    if (cluster === null) throw new Error('scenario: no cluster yet');
    const before = cluster.transcript.length;
    const printed = this.execute(cluster, verb, args);
    const lines = [...cluster.transcript.slice(before), ...printed];
    return lines.length === 0 ? ['ok'] : lines;
  }

  private execute(cluster: CoreCluster, verb: string, args: string[]): string[] {
    const n = (i: number) => {
      const value = Number(args[i]);
      if (!Number.isInteger(value)) throw new Error(`${verb}: argument ${i + 1} must be a node id`);
      return value;
    };
    switch (verb) {
      case 'campaign':
        cluster.core(n(0)).campaign();
        cluster.process(n(0));
        return [];
      case 'tick':
        cluster.tick(n(0), args[1] === undefined ? 1 : Number(args[1]));
        return [];
      case 'tick-all':
        cluster.tickAll(args[0] === undefined ? 1 : Number(args[0]));
        return [];
      case 'stabilize':
        cluster.stabilize();
        return [];
      case 'deliver':
        cluster.deliver(linkFilter(args[0]));
        return [];
      case 'drop':
        return [`dropped ${cluster.dropMessages(linkFilter(args[0]))}`];
      case 'propose': {
        const result = cluster.propose(n(0), args.slice(1).join(' '));
        return [result.ok ? `proposed ${result.term}/${result.index}` : `refused ${JSON.stringify(result.error)}`];
      }
      case 'read': {
        const accepted = cluster.core(n(0)).readIndex(Number(args[1]));
        cluster.process(n(0));
        return [accepted.ok ? 'read requested' : `refused ${JSON.stringify(accepted.error)}`];
      }
      case 'reads': {
        const node = cluster.node(n(0));
        const lines = [
          ...node.readStates.map(
            (state) => `read ${state.requestId} at index ${state.index} (applied ${node.appliedIndex})`,
          ),
          ...node.readFailures.map((failure) => `read ${failure.requestId} failed: ${failure.reason}`),
        ];
        node.readStates = [];
        node.readFailures = [];
        return lines.length === 0 ? ['no reads'] : lines;
      }
      case 'transfer': {
        const accepted = cluster.core(n(0)).transferLeader(NodeId(n(1)));
        cluster.process(n(0));
        return [accepted.ok ? 'transfer started' : `refused ${JSON.stringify(accepted.error)}`];
      }
      case 'conf':
        return this.conf(cluster, n(0), args.slice(1));
      case 'partition': {
        const groups = args
          .join(' ')
          .split('|')
          .map((group) => group.trim().split(/\s+/).map(Number));
        cluster.partition(...groups);
        return [];
      }
      case 'cut':
        cluster.cut(n(0), n(1));
        return [];
      case 'heal':
        cluster.heal();
        return [];
      case 'crash':
        cluster.crash(n(0));
        return [];
      case 'restart':
        cluster.restart(n(0));
        cluster.process(n(0));
        return [];
      case 'compact':
        cluster.compact(n(0));
        return [];
      case 'hold':
        cluster.node(n(0)).holdWrites = true;
        return [];
      case 'release':
        cluster.node(n(0)).holdWrites = false;
        cluster.releaseWrites(n(0));
        return [];
      case 'status':
        return [...cluster.nodes.keys()].map((id) => cluster.statusText(id));
      case 'log':
        return [`n${n(0)} ${cluster.logText(n(0))}`];
      case 'applied':
        return [`n${n(0)} applied [${cluster.appliedText(n(0)).join(' ')}]`];
      default:
        throw new Error(`scenario: unknown command ${verb}`);
    }
  }

  private conf(cluster: CoreCluster, id: number, args: string[]): string[] {
    const [kind, node] = args as [string, string];
    const types: Record<string, ConfChange['type']> = {
      'add-learner': 'addLearner',
      'add-voter': 'addVoter',
      remove: 'removeNode',
    };
    const type = types[kind];
    if (type === undefined) throw new Error(`conf: unknown change ${kind}`);
    const result = cluster.core(id).proposeConfChange([{ type, node: NodeId(Number(node)) }]);
    cluster.process(id);
    return [result.ok ? `proposed config ${result.term}/${result.index}` : `refused ${JSON.stringify(result.error)}`];
  }
}

/** Runs a scenario file: returns mismatches (and rewrites the file when `update`). */
export function runScenarioFile(path: string, update: boolean): string[] {
  const { header, blocks } = parseScenario(readFileSync(path, 'utf8'));
  const runner = new ScenarioRunner();
  const outputs: { comments: string[]; command: string; output: string[] }[] = [];
  const mismatches: string[] = [];
  for (const block of blocks) {
    let output: string[];
    try {
      output = runner.run(block.command);
    } catch (error) {
      output = [`error: ${error instanceof Error ? error.message : String(error)}`];
    }
    outputs.push({ comments: block.comments, command: block.command, output });
    if (!update && output.join('\n') !== block.expected.join('\n')) {
      mismatches.push(`${block.command}\n--- expected\n${block.expected.join('\n')}\n--- got\n${output.join('\n')}`);
    }
  }
  if (update) writeFileSync(path, formatScenario(header, outputs));
  return mismatches;
}
