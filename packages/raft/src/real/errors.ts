/**
 * What a `KvClient` call can end with besides a result. The split that matters to a caller (and to
 * `dsys kv`'s exit codes) is whether the operation may have taken effect:
 * - `REJECTED`, `UNAVAILABLE`: it definitely did not (exit code 1);
 * - `INDETERMINATE`: it may or may not have (exit code 2; a history records it as 'info').
 * Reads never end INDETERMINATE: a read that was not answered changed nothing.
 */
import { DsError } from '@dsys/kit';

export type KvClientErrorDetail =
  /** The service refused the request (malformed, over a limit, a membership change it cannot make). */
  | { readonly code: 'REJECTED'; readonly operation: string; readonly reason: string; readonly message: string }
  /** The deadline passed and no attempt can have taken effect (no leader, no node reachable, refused). */
  | {
      readonly code: 'UNAVAILABLE';
      readonly operation: string;
      readonly attempts: number;
      readonly lastProblem: string;
    }
  /** The deadline passed (or the session was lost) after an attempt that may have taken effect. */
  | {
      readonly code: 'INDETERMINATE';
      readonly operation: string;
      readonly attempts: number;
      readonly lastProblem: string;
    }
  /** `close()` was called while the operation was in flight (indeterminate for a write that was sent). */
  | { readonly code: 'CLOSED'; readonly operation: string; readonly maybeApplied: boolean }
  /** A node answered something that does not fit the request: a bug or a mismatched server. */
  | { readonly code: 'BAD_RESPONSE'; readonly operation: string; readonly response: string };

export class KvClientError extends DsError<KvClientErrorDetail> {
  constructor(detail: KvClientErrorDetail, message?: string) {
    super(detail, message);
    this.name = 'KvClientError';
  }

  /** True when the operation may have taken effect even though it did not report success. */
  get indeterminate(): boolean {
    const detail = this.detail;
    return detail.code === 'INDETERMINATE' || (detail.code === 'CLOSED' && detail.maybeApplied);
  }
}
