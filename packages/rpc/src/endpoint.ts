/**
 * What an RPC endpoint (client or server connection) needs from the world, so the same code runs over
 * TCP (src/real) and inside the simulator (src/sim.ts): a clock, a logger, and a transport to poke.
 * The endpoints never touch sockets or timers themselves; a driver feeds them bytes and `tick(nowMs)`.
 */

export interface Clock {
  /** Milliseconds on a monotonic clock (virtual in the simulator). */
  nowMs(): number;
}

export type LogFields = Readonly<Record<string, unknown>>;

/** Structurally the same as `@dsys/runtime-node`'s `Logger`, so one can be passed in directly. */
export interface RpcLogger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

export const silentLogger: RpcLogger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};

/** A logger that keeps entries in memory (tests assert on logged reasons). */
export function memoryLogger(): { logger: RpcLogger; entries: { level: string; msg: string; fields: LogFields }[] } {
  const entries: { level: string; msg: string; fields: LogFields }[] = [];
  const at =
    (level: string) =>
    (msg: string, fields: LogFields = {}) => {
      entries.push({ level, msg, fields });
    };
  return { logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }, entries };
}

/** The driver's side of one connection, as seen by an endpoint. */
export interface Transport {
  /** The endpoint wrote frames: the driver should collect `takeOutput()` soon (once per turn, batched). */
  wake(): void;
  /** Close after sending what is queued. The driver then reports `closed()` to the endpoint. */
  close(reason: string): void;
  /** True while the driver's send buffer is above its high-water mark (the peer reads slowly). */
  congested(): boolean;
}
