/**
 * The built-in client protocol, one frame per message:
 *   client -> node: {requestId, request}
 *   node -> client: {type: 'response', requestId, response} | {type: 'rejected', requestId, reason}
 * `requestId` is chosen by the client and must be unique among its outstanding requests on one
 * connection. 'rejected' means the node refused the request before the protocol saw it (too many in
 * flight, duplicate id, shutting down): it definitely did not take effect.
 */
import { type Schema, s } from '@dsys/kit';

export const REJECT_REASON_BYTES_MAX = 1024;

export interface RequestFrame<Request> {
  readonly requestId: number;
  readonly request: Request;
}

export type ReplyFrame<Response> =
  | { readonly type: 'response'; readonly requestId: number; readonly response: Response }
  | { readonly type: 'rejected'; readonly requestId: number; readonly reason: string };

export interface ClientWire<Request, Response> {
  readonly requestFrame: Schema<RequestFrame<Request>>;
  readonly replyFrame: Schema<ReplyFrame<Response>>;
}

export function clientWire<Request, Response>(schemas: {
  readonly request: Schema<Request>;
  readonly response: Schema<Response>;
}): ClientWire<Request, Response> {
  // The casts only restate the inferred shapes: with a generic field schema TypeScript defers the
  // struct's optional-key computation, so it cannot see they are equal.
  const requestFrame = s.struct({ requestId: s.uint, request: schemas.request });
  const replyFrame = s.union('type', {
    response: s.struct({ requestId: s.uint, response: schemas.response }),
    rejected: s.struct({ requestId: s.uint, reason: s.string({ bytesMax: REJECT_REASON_BYTES_MAX }) }),
  });
  return {
    requestFrame: requestFrame as unknown as Schema<RequestFrame<Request>>,
    replyFrame: replyFrame as unknown as Schema<ReplyFrame<Response>>,
  };
}
