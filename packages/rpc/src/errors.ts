/**
 * Typed RPC errors. Every failed call rejects with an `RpcError` whose `detail.code` says what went
 * wrong and whose `detail.executed` says what the caller may conclude about the procedure's effect:
 * - 'no': it definitely did not run (safe to try again, even a non-idempotent call);
 * - 'yes': it ran and failed (an application error);
 * - 'unknown': it may or may not have run (timeouts, cancellation after sending, lost replies that
 *   the reply cache can no longer answer). Histories record such calls as indeterminate.
 */
import { DsError } from '@dsys/kit';

export type RpcErrorCode =
  /** The handler threw an `AppError`; `appCode` is its code. */
  | 'APPLICATION'
  /** The arguments did not match the procedure's schema (checked by the client, or decoded by the server). */
  | 'INVALID_ARGUMENT'
  /** The server has no such procedure. */
  | 'UNKNOWN_PROCEDURE'
  /** The deadline passed, on the client or on the server. */
  | 'DEADLINE_EXCEEDED'
  /** The caller cancelled. */
  | 'CANCELLED'
  /** Too many calls in flight (client queue or server limit). */
  | 'RESOURCE_EXHAUSTED'
  /** The handler threw something other than an `AppError`, or returned a value its schema rejects. */
  | 'INTERNAL'
  /** The server could not be reached or bound before the deadline, or the connection broke. */
  | 'UNAVAILABLE'
  /** A non-idempotent call whose outcome cannot be learned: the server restarted or forgot its reply. */
  | 'INDETERMINATE'
  /** Client and server disagree on the interface; `problems` names the procedures. */
  | 'BIND_MISMATCH'
  /** The peer broke the wire protocol. */
  | 'PROTOCOL'
  /** The client was closed. */
  | 'CLOSED';

export type Executed = 'no' | 'yes' | 'unknown';

export interface ProcedureProblem {
  readonly procedure: string;
  /** 'missing' (the server lacks it) or 'different' (same name, other signature). */
  readonly problem: 'missing' | 'different';
  readonly client: string;
  /** The server's canonical text, when it has the procedure. */
  readonly server: string | null;
}

export interface RpcErrorDetail {
  readonly code: RpcErrorCode;
  readonly executed: Executed;
  /** The procedure called, when the error belongs to a call. */
  readonly procedure?: string;
  /** For APPLICATION errors: the code the handler chose. */
  readonly appCode?: string;
  /** For BIND_MISMATCH. */
  readonly problems?: readonly ProcedureProblem[];
}

export class RpcError extends DsError<RpcErrorDetail> {
  constructor(detail: RpcErrorDetail, message?: string) {
    super(detail, message);
    this.name = 'RpcError';
  }

  get executed(): Executed {
    return this.detail.executed;
  }

  /** Transport trouble (unreachable, broken connection, protocol violation), as opposed to the procedure failing. */
  get isTransport(): boolean {
    const code = this.detail.code;
    return code === 'UNAVAILABLE' || code === 'PROTOCOL' || code === 'INDETERMINATE';
  }
}

/**
 * Thrown by a handler to return a typed application error (`NOT_FOUND`, `CONFLICT`, ...). The client
 * receives an `RpcError` with code APPLICATION, `appCode` and `message`, and `executed: 'yes'`.
 */
export class AppError extends Error {
  readonly appCode: string;
  constructor(appCode: string, message?: string) {
    super(message ?? appCode);
    this.name = 'AppError';
    this.appCode = appCode;
  }
}

export function rpcError(
  code: RpcErrorCode,
  executed: Executed,
  message: string,
  extra: { procedure?: string; appCode?: string; problems?: readonly ProcedureProblem[] } = {},
): RpcError {
  return new RpcError({ code, executed, ...extra }, message);
}

/** The human text of a bind mismatch, one procedure per line. */
export function describeProblems(service: string, problems: readonly ProcedureProblem[]): string {
  const lines = problems.map((p) =>
    p.problem === 'missing'
      ? `  ${p.procedure}: missing on the server (client has: ${p.client})`
      : `  ${p.procedure}: differs\n    client: ${p.client}\n    server: ${p.server}`,
  );
  return `cannot bind to service '${service}': ${problems.length} procedure(s) differ\n${lines.join('\n')}`;
}
