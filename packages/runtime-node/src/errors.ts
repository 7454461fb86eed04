/**
 * Typed errors of the runtime (lodestar style: a `code` union with metadata). Storage errors name
 * the file and byte offset, because the operator has to find and inspect that file.
 */
import { DsError } from '@dsys/kit';

export type StorageErrorDetail =
  | { readonly code: 'LOG_CORRUPT'; readonly file: string; readonly offset: number; readonly reason: string }
  | { readonly code: 'SNAPSHOT_CORRUPT'; readonly file: string; readonly offset: number; readonly reason: string }
  | { readonly code: 'MISSING_SEGMENT'; readonly file: string; readonly reason: string }
  | { readonly code: 'LOCKED'; readonly file: string; readonly pid: number | null }
  | { readonly code: 'STORAGE_FAILED'; readonly operation: string; readonly file: string; readonly reason: string }
  | { readonly code: 'STORAGE_CLOSED' };

function describeStorage(detail: StorageErrorDetail): string {
  switch (detail.code) {
    case 'LOG_CORRUPT':
      return (
        `log segment ${detail.file} is corrupt at byte offset ${detail.offset} (${detail.reason}) with valid records ` +
        'after it; refusing to start because serving on could lose acknowledged writes'
      );
    case 'SNAPSHOT_CORRUPT':
      return `snapshot ${detail.file} is corrupt at byte offset ${detail.offset} (${detail.reason}); refusing to start`;
    case 'MISSING_SEGMENT':
      return `log segment ${detail.file} is missing (${detail.reason}); refusing to start`;
    case 'LOCKED':
      return (
        `data directory is locked by ${detail.pid === null ? 'another user' : `process ${detail.pid}`} ` +
        `(lock file ${detail.file}); two processes must never share a data directory`
      );
    case 'STORAGE_FAILED':
      return `storage ${detail.operation} failed on ${detail.file}: ${detail.reason}`;
    case 'STORAGE_CLOSED':
      return 'the durable log is closed';
  }
}

export class StorageError extends DsError<StorageErrorDetail> {
  constructor(detail: StorageErrorDetail, options?: { cause?: unknown }) {
    super(detail, describeStorage(detail));
    this.name = 'StorageError';
    if (options?.cause !== undefined) this.cause = options.cause;
  }
}

export type ClientErrorDetail =
  /** No response in time: the request may or may not have taken effect (history status 'info'). */
  | { readonly code: 'TIMEOUT'; readonly timeoutMs: number }
  /** The connection broke with the request outstanding: indeterminate, like a timeout. */
  | { readonly code: 'CONNECTION_LOST'; readonly reason: string }
  /** The server refused the request before handing it to the protocol: it definitely did not take effect. */
  | { readonly code: 'REJECTED'; readonly reason: string }
  | { readonly code: 'CONNECT_FAILED'; readonly endpoint: string; readonly reason: string }
  /** The server sent bytes that do not decode; the connection is closed. */
  | { readonly code: 'BAD_RESPONSE'; readonly reason: string };

export class ClientError extends DsError<ClientErrorDetail> {
  constructor(detail: ClientErrorDetail) {
    super(detail);
    this.name = 'ClientError';
  }

  /** True when the request may have taken effect anyway (record it as 'info', not 'fail'). */
  get indeterminate(): boolean {
    return this.detail.code === 'TIMEOUT' || this.detail.code === 'CONNECTION_LOST';
  }
}

export type NodeErrorDetail =
  | { readonly code: 'NODE_STOPPED' }
  | { readonly code: 'TIMEOUT'; readonly timeoutMs: number }
  | { readonly code: 'REJECTED'; readonly reason: string }
  | { readonly code: 'LISTEN_FAILED'; readonly endpoint: string; readonly reason: string }
  | { readonly code: 'STEP_FAILED'; readonly event: string; readonly reason: string };

export class NodeError extends DsError<NodeErrorDetail> {
  constructor(detail: NodeErrorDetail, options?: { cause?: unknown }) {
    super(detail);
    this.name = 'NodeError';
    if (options?.cause !== undefined) this.cause = options.cause;
  }
}
