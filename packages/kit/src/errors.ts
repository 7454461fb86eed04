/**
 * Typed error base for public APIs (lodestar's LodestarError): every error carries a `code` union
 * plus metadata, so callers branch on `error.detail.code` instead of parsing messages.
 */
export interface ErrorDetail {
  readonly code: string;
}

export class DsError<T extends ErrorDetail = ErrorDetail> extends Error {
  readonly detail: T;
  constructor(detail: T, message?: string) {
    super(message ?? DsError.describe(detail));
    this.detail = detail;
    this.name = 'DsError';
  }

  get code(): T['code'] {
    return this.detail.code;
  }

  static describe(detail: ErrorDetail): string {
    const rest = Object.entries(detail)
      .filter(([key]) => key !== 'code')
      .map(([key, value]) => `${key}=${typeof value === 'bigint' ? value.toString() : JSON.stringify(value)}`);
    return rest.length === 0 ? detail.code : `${detail.code} (${rest.join(', ')})`;
  }
}

/** The message of anything thrown, without assuming it is an Error. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
