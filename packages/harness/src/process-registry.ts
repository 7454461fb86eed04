/**
 * The safety net that keeps a failed test from leaking node processes.
 *
 * Every child the harness starts is registered here by PID until it has exited. If the harness's own
 * process ends while any are alive, they are SIGKILLed synchronously:
 * - on 'exit' (normal end, `process.exit`, an uncaught exception, a test file finishing);
 * - on SIGINT / SIGTERM / SIGHUP, unless a foreground runner has claimed those signals to stop the
 *   cluster gracefully itself. After killing the children, if nothing else listens for the signal,
 *   the signal is re-raised so the process still dies as it would have without us.
 * Nothing can run when the harness process itself is SIGKILLed; that case is documented in the README.
 *
 * This is process-global state on purpose: the OS process is the unit being protected, and one
 * exit hook per process (not per cluster) is what Node allows cheaply.
 */

const live = new Set<number>();
const SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
let installed = false;
let signalClaims = 0;

/**
 * Sends `signal` to the child's process group (children are started detached, so the group id is the
 * child's PID and also covers anything it spawned), falling back to the PID itself. Returns false if
 * the process no longer exists.
 */
export function signalProcess(pid: number, signal: NodeJS.Signals): boolean {
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, signal);
      return true;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ESRCH') throw error;
    }
  }
  return false;
}

/** True if a process with this PID exists (and is not a reaped zombie). */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ESRCH') return false;
    if (code === 'EPERM') return true; // exists, owned by someone else
    throw error;
  }
}

function killAllSync(): void {
  for (const pid of live) {
    try {
      signalProcess(pid, 'SIGKILL');
    } catch (error) {
      process.stderr.write(`harness: could not kill pid ${pid}: ${String(error)}\n`);
    }
  }
  live.clear();
}

function onSignal(signal: NodeJS.Signals): void {
  if (signalClaims > 0) return;
  killAllSync();
  if (process.listenerCount(signal) === 1) {
    process.removeListener(signal, onSignal);
    process.kill(process.pid, signal);
  }
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', killAllSync);
  for (const signal of SIGNALS) process.on(signal, onSignal);
}

export function registerChild(pid: number): void {
  install();
  live.add(pid);
}

export function unregisterChild(pid: number): void {
  live.delete(pid);
}

/** PIDs of registered children that have not exited yet. */
export function liveChildren(): number[] {
  return [...live];
}

/**
 * A foreground runner takes over SIGINT/SIGTERM/SIGHUP to stop its cluster gracefully; while claimed
 * the registry does not kill on those signals (it still kills on 'exit'). Returns the release function.
 */
export function claimSignals(): () => void {
  install();
  signalClaims++;
  let released = false;
  return () => {
    if (released) return;
    released = true;
    signalClaims--;
  };
}
