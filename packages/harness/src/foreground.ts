/**
 * The process-group runner behind `dsys <system> up` and `dsys up`: print `ready: <client endpoints>`,
 * then keep the cluster(s) up until SIGINT/SIGTERM (stop every node by PID, exit code 0) or until a
 * node dies on its own (say which, quote its log tail, stop the rest, exit code 1). A second signal
 * while stopping SIGKILLs whatever is left at once.
 */
import type { Cluster, NodeExitEvent } from './cluster.js';
import { describeExit } from './node-process.js';
import { claimSignals, signalProcess } from './process-registry.js';

export interface ForegroundOptions {
  /** Called after the ready line is printed. */
  readonly onReady?: (endpoints: readonly string[]) => void;
  /** Where the ready line goes; default stdout. */
  readonly out?: NodeJS.WritableStream;
  /** Where crash reports go; default stderr. */
  readonly err?: NodeJS.WritableStream;
}

/** One cluster of a `dsys up` that runs several systems at once. */
export interface NamedCluster {
  readonly name: string;
  readonly cluster: Cluster;
  /** What to print for this system after its endpoints (how to reach it), one or more lines. */
  readonly howToReach?: string;
}

type Ending =
  | { readonly kind: 'signal'; readonly signal: NodeJS.Signals }
  | { readonly kind: 'crash'; readonly name: string; readonly event: NodeExitEvent };

const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** Resolves with the exit code once the cluster has been stopped. */
export function runClusterForeground(cluster: Cluster, options: ForegroundOptions = {}): Promise<number> {
  return runClustersForeground([{ name: '', cluster }], options);
}

/**
 * Several clusters as one foreground group. With one unnamed cluster it prints just
 * `ready: <endpoints>`; with several it prints `<name>: ready: <endpoints>` and the how-to line for
 * each, then a last `ready: <name>=<endpoints>; ...` line once all serve.
 */
export async function runClustersForeground(
  clusters: readonly NamedCluster[],
  options: ForegroundOptions = {},
): Promise<number> {
  const out = options.out ?? process.stdout;
  const err = options.err ?? process.stderr;
  const release = claimSignals();
  let finish: (ending: Ending) => void = () => undefined;
  const ended = new Promise<Ending>((resolve) => {
    finish = resolve;
  });
  let signalled = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signalled++;
    if (signalled === 1) {
      finish({ kind: 'signal', signal });
      return;
    }
    err.write(`harness: ${signal} again; killing all nodes now\n`);
    for (const { cluster } of clusters) {
      for (const id of cluster.ids) {
        const pid = cluster.pid(id);
        if (pid !== null) signalProcess(pid, 'SIGKILL');
      }
    }
  };
  for (const signal of STOP_SIGNALS) process.on(signal, onSignal);
  // `npm start` does not forward SIGTERM to its child: when the parent that started us goes away,
  // we are re-parented, and stopping then is the only way not to leave orphaned nodes running.
  const parent = process.ppid;
  const orphanWatch = setInterval(() => {
    if (process.ppid !== parent) finish({ kind: 'signal', signal: 'SIGHUP' });
  }, 500);
  orphanWatch.unref();
  const unsubscribes = clusters.map(({ name, cluster }) =>
    cluster.onExit((event) => {
      if (!event.expected) finish({ kind: 'crash', name, event });
    }),
  );
  try {
    const down = findDownNode(clusters);
    if (down !== null) {
      finish(down);
    } else {
      const all: string[] = [];
      const single = clusters.length === 1 && clusters[0]!.name === '';
      for (const { name, cluster, howToReach } of clusters) {
        const endpoints = cluster.endpoints();
        all.push(...endpoints);
        if (!single) out.write(`${name}: ready: ${endpoints.join(',')}\n`);
        if (howToReach !== undefined) out.write(`${howToReach.trimEnd()}\n`);
      }
      if (single) out.write(`ready: ${all.join(',')}\n`);
      else
        out.write(
          `ready: ${clusters.map(({ name, cluster }) => `${name}=${cluster.endpoints().join(',')}`).join('; ')}\n`,
        );
      options.onReady?.(all);
    }
    const ending = await ended;
    if (ending.kind === 'crash') err.write(crashReport(ending.name, ending.event));
    await Promise.all(clusters.map(({ cluster }) => cluster.stopAll()));
    return ending.kind === 'crash' ? 1 : 0;
  } finally {
    clearInterval(orphanWatch);
    for (const unsubscribe of unsubscribes) unsubscribe();
    for (const signal of STOP_SIGNALS) process.removeListener(signal, onSignal);
    release();
  }
}

function findDownNode(clusters: readonly NamedCluster[]): Ending | null {
  for (const { name, cluster } of clusters) {
    const down = cluster.ids.find((id) => !cluster.isRunning(id));
    if (down !== undefined) {
      const logTail = cluster.logTail(down);
      return {
        kind: 'crash',
        name,
        event: { id: down, pid: -1, exit: { code: null, signal: null }, expected: false, logTail },
      };
    }
  }
  return null;
}

function crashReport(name: string, event: NodeExitEvent): string {
  const how =
    event.pid === -1 ? 'was not running' : `(pid ${event.pid}) exited unexpectedly: ${describeExit(event.exit)}`;
  const tail =
    event.logTail.length > 0 ? `\n--- last ${event.logTail.length} log lines ---\n${event.logTail.join('\n')}` : '';
  return `${name === '' ? '' : `${name}: `}node ${event.id} ${how}${tail}\n`;
}
