import { DsError } from '@dsys/kit';

export type HarnessErrorDetail =
  | { readonly code: 'NODE_NOT_READY'; readonly id: number; readonly reason: string }
  | { readonly code: 'NODE_EXITED'; readonly id: number; readonly exit: string }
  | { readonly code: 'NODE_NOT_RUNNING'; readonly id: number }
  | { readonly code: 'NODE_BUSY'; readonly id: number; readonly state: string }
  | { readonly code: 'UNKNOWN_NODE'; readonly id: number }
  | { readonly code: 'NO_PROXIES' }
  | { readonly code: 'CLUSTER_STOPPED' }
  | {
      readonly code: 'WAIT_TIMEOUT';
      readonly description: string;
      readonly timeoutMs: number;
      /** The error the last attempt threw, if it threw. */
      readonly lastAttempt: string | null;
    };

/** Errors of the harness's public API. Errors about a node carry its last log lines. */
export class HarnessError extends DsError<HarnessErrorDetail> {
  readonly logTail: readonly string[];

  constructor(detail: HarnessErrorDetail, logTail: readonly string[] = [], cause?: unknown) {
    super(detail, HarnessError.message(detail, logTail));
    this.name = 'HarnessError';
    this.logTail = logTail;
    if (cause !== undefined) this.cause = cause;
  }

  private static message(detail: HarnessErrorDetail, logTail: readonly string[]): string {
    const head = DsError.describe(detail);
    if (logTail.length === 0) return head;
    return `${head}\n--- last ${logTail.length} log lines ---\n${logTail.join('\n')}`;
  }
}
