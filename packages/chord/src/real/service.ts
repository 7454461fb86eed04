/**
 * The Chord node's RPC interface (an @dsys/rpc interface module): `deliver` carries protocol messages
 * between nodes; the rest is the client-facing API that `dsys chord lookup|put|get|ring` call.
 *
 * `deliver` is idempotent as far as RPC is concerned: Chord's messages are unreliable by contract
 * (retries and duplicates are the protocol's business), so the server keeps no reply cache for it.
 */
import { s } from '@dsys/kit';
import { defineInterface, unary } from '@dsys/rpc';
import { KEY_BYTES_MAX, LOOKUP_MODES, messageSchema, responseSchema, VALUE_BYTES_MAX } from '../messages.js';

const key = s.string({ bytesMax: KEY_BYTES_MAX });

export const chordService = defineInterface({
  name: 'dsys.chord',
  version: 1,
  procedures: {
    deliver: unary({
      args: s.struct({ from: s.uint, message: messageSchema }),
      result: s.struct({}),
      idempotent: true,
    }),
    lookup: unary({
      args: s.struct({ key, mode: s.optional(s.enum(LOOKUP_MODES)) }),
      result: responseSchema,
      idempotent: true,
    }),
    put: unary({ args: s.struct({ key, value: s.bytes({ bytesMax: VALUE_BYTES_MAX }) }), result: responseSchema }),
    get: unary({ args: s.struct({ key }), result: responseSchema, idempotent: true }),
    status: unary({ args: s.struct({}), result: responseSchema, idempotent: true }),
    join: unary({ args: s.struct({ via: s.string({ bytesMax: 64 }) }), result: responseSchema }),
    leave: unary({ args: s.struct({}), result: responseSchema }),
  },
});

export type ChordService = typeof chordService;
