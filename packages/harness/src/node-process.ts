/**
 * One life of one node: a child process from spawn to exit. Its stdout and stderr lines go to the
 * node's log; the first stdout line matching the ready pattern marks it ready and yields its client
 * endpoint (the pattern's first capture group, else the whole line).
 *
 * Children are spawned detached (own process group): Ctrl+C in a terminal then reaches only the
 * harness, which stops the nodes by PID in order, and a signal to one node's group cannot touch another.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { HarnessError } from './errors.js';
import type { ProcessCommand } from './node-command.js';
import { LineSplitter, type NodeLog } from './node-log.js';
import { registerChild, signalProcess, unregisterChild } from './process-registry.js';

export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export function describeExit(exit: ExitInfo): string {
  return exit.signal !== null ? `killed by ${exit.signal}` : `exit code ${exit.code}`;
}

/** How long after a process exits its output pipes may stay open before the exit is reported anyway. */
const CLOSE_AFTER_EXIT_MS_MAX = 1000;

type Waiter<T> = { resolve: (value: T) => void; reject: (error: Error) => void };

export class NodeProcess {
  readonly id: number;
  readonly pid: number;
  private readonly child: ChildProcess;
  private readonly log: NodeLog;
  private readonly readyPattern: RegExp;
  private readyEndpoint: string | null = null;
  private exitInfo: ExitInfo | null = null;
  private readyWaiters: Waiter<string>[] = [];
  private exitWaiters: Waiter<ExitInfo>[] = [];

  private constructor(id: number, child: ChildProcess, pid: number, log: NodeLog, readyPattern: RegExp) {
    this.id = id;
    this.child = child;
    this.pid = pid;
    this.log = log;
    this.readyPattern = readyPattern;
  }

  /** Spawns the process; throws (after logging why) if it could not be started at all. */
  static async spawn(id: number, command: ProcessCommand, log: NodeLog, readyPattern: RegExp): Promise<NodeProcess> {
    const env = { ...process.env, ...command.env };
    const child = spawn(command.command, command.args, {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
      ...(command.cwd !== undefined ? { cwd: command.cwd } : {}),
    });
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('spawn', () => resolve(child.pid as number));
      child.once('error', reject);
    }).catch((error: Error) => {
      log.append(`--- harness: could not start node ${id}: ${error.message} ---`);
      throw new HarnessError({ code: 'NODE_NOT_READY', id, reason: `spawn failed: ${error.message}` }, log.lines());
    });
    registerChild(pid);
    log.append(`--- harness: started node ${id}, pid ${pid}: ${command.command} ${command.args.join(' ')} ---`);
    const node = new NodeProcess(id, child, pid, log, readyPattern);
    node.attach();
    return node;
  }

  private attach(): void {
    const stdout = new LineSplitter((line) => this.onStdoutLine(line));
    const stderr = new LineSplitter((line) => this.log.append(line));
    this.child.stdout?.on('data', (chunk: Buffer) => stdout.push(chunk));
    this.child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk));
    // 'close' fires after stdio has drained, so the log tail is complete by then. It can lag 'exit'
    // forever if something the node spawned outside its group still holds the pipes, hence the bound.
    let finished = false;
    const finish = (exit: ExitInfo): void => {
      if (finished) return;
      finished = true;
      stdout.flush();
      stderr.flush();
      this.onExit(exit);
    };
    this.child.once('exit', (code: number | null, signal: NodeJS.Signals | null) => {
      unregisterChild(this.pid);
      setTimeout(() => finish({ code, signal }), CLOSE_AFTER_EXIT_MS_MAX).unref();
    });
    this.child.once('close', (code: number | null, signal: NodeJS.Signals | null) => finish({ code, signal }));
    this.child.on('error', (error) => this.log.append(`--- harness: process error: ${error.message} ---`));
  }

  private onStdoutLine(line: string): void {
    this.log.append(line);
    if (this.readyEndpoint !== null) return;
    const match = this.readyPattern.exec(line);
    if (match === null) return;
    this.readyEndpoint = (match[1] ?? line).trim();
    const waiters = this.readyWaiters;
    this.readyWaiters = [];
    for (const waiter of waiters) waiter.resolve(this.readyEndpoint);
  }

  private onExit(exit: ExitInfo): void {
    this.exitInfo = exit;
    unregisterChild(this.pid);
    this.log.append(`--- harness: node ${this.id} (pid ${this.pid}) ${describeExit(exit)} ---`);
    const readyWaiters = this.readyWaiters;
    this.readyWaiters = [];
    for (const waiter of readyWaiters) waiter.reject(this.notReady(`exited before ready (${describeExit(exit)})`));
    const exitWaiters = this.exitWaiters;
    this.exitWaiters = [];
    for (const waiter of exitWaiters) waiter.resolve(exit);
  }

  private notReady(reason: string): HarnessError {
    return new HarnessError({ code: 'NODE_NOT_READY', id: this.id, reason }, this.log.lines());
  }

  get exited(): ExitInfo | null {
    return this.exitInfo;
  }

  get endpoint(): string | null {
    return this.readyEndpoint;
  }

  /** Resolves with the endpoint from the ready line; rejects if the process exits first or time runs out. */
  waitReady(timeoutMs: number): Promise<string> {
    if (this.readyEndpoint !== null) return Promise.resolve(this.readyEndpoint);
    if (this.exitInfo !== null) {
      return Promise.reject(this.notReady(`exited before ready (${describeExit(this.exitInfo)})`));
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter<string> = {
        resolve: (endpoint) => {
          clearTimeout(timer);
          resolve(endpoint);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      const timer = setTimeout(() => {
        this.readyWaiters = this.readyWaiters.filter((other) => other !== waiter);
        reject(this.notReady(`no line matching ${this.readyPattern} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.readyWaiters.push(waiter);
    });
  }

  /** Resolves once the process has exited and its output is drained. */
  waitExit(): Promise<ExitInfo> {
    if (this.exitInfo !== null) return Promise.resolve(this.exitInfo);
    return new Promise((resolve, reject) => this.exitWaiters.push({ resolve, reject }));
  }

  /** Sends a signal (to the process group); a no-op once the process has exited. */
  signal(signal: NodeJS.Signals): void {
    if (this.exitInfo !== null) return;
    signalProcess(this.pid, signal);
  }

  /** SIGTERM, then SIGKILL if it has not exited after `timeoutMs`. */
  async stop(timeoutMs: number): Promise<ExitInfo> {
    if (this.exitInfo !== null) return this.exitInfo;
    this.signal('SIGTERM');
    this.signal('SIGCONT'); // a frozen (SIGSTOPped) process would hold SIGTERM pending until killed
    let timer: NodeJS.Timeout | undefined;
    const escalate = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    const exit = this.waitExit();
    const first = await Promise.race([exit, escalate.then(() => null)]);
    clearTimeout(timer);
    if (first !== null) return first;
    this.log.append(`--- harness: node ${this.id} ignored SIGTERM for ${timeoutMs} ms; sending SIGKILL ---`);
    this.signal('SIGKILL');
    return exit;
  }
}
