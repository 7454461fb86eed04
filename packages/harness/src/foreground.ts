/**
 * The process-group runner behind `dsys <system> up`: print `ready: <client endpoints>`, then keep the
 * cluster up until SIGINT/SIGTERM (stop every node by PID, exit code 0) or until a node dies on its
 * own (say which, quote its log tail, stop the rest, exit code 1). A second signal while stopping
 * SIGKILLs whatever is left at once.
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

type Ending =
  | { readonly kind: 'signal'; readonly signal: NodeJS.Signals }
  | { readonly kind: 'crash'; readonly event: NodeExitEvent };

const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** Resolves with the exit code once the cluster has been stopped. */
export async function runClusterForeground(cluster: Cluster, options: ForegroundOptions = {}): Promise<number> {
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
    for (const id of cluster.ids) {
      const pid = cluster.pid(id);
      if (pid !== null) signalProcess(pid, 'SIGKILL');
    }
  };
  for (const signal of STOP_SIGNALS) process.on(signal, onSignal);
  const unsubscribe = cluster.onExit((event) => {
    if (!event.expected) finish({ kind: 'crash', event });
  });
  try {
    const down = cluster.ids.find((id) => !cluster.isRunning(id));
    if (down !== undefined) {
      const logTail = cluster.logTail(down);
      finish({
        kind: 'crash',
        event: { id: down, pid: -1, exit: { code: null, signal: null }, expected: false, logTail },
      });
    } else {
      out.write(`ready: ${cluster.endpoints().join(',')}\n`);
      options.onReady?.(cluster.endpoints());
    }
    const ending = await ended;
    if (ending.kind === 'crash') err.write(crashReport(ending.event));
    await cluster.stopAll();
    return ending.kind === 'crash' ? 1 : 0;
  } finally {
    unsubscribe();
    for (const signal of STOP_SIGNALS) process.removeListener(signal, onSignal);
    release();
  }
}

function crashReport(event: NodeExitEvent): string {
  const how =
    event.pid === -1 ? 'was not running' : `(pid ${event.pid}) exited unexpectedly: ${describeExit(event.exit)}`;
  const tail =
    event.logTail.length > 0 ? `\n--- last ${event.logTail.length} log lines ---\n${event.logTail.join('\n')}` : '';
  return `node ${event.id} ${how}${tail}\n`;
}
