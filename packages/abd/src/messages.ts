/**
 * Wire and disk formats of the ABD register, as kit `s.*` schemas: one declaration gives the
 * TypeScript type, the binary encoding (used by the real runtime and by the simulator's `wireCodec`
 * mode), and validation of untrusted values.
 */
import { type Infer, s } from '@dsys/kit';

/** Largest register value in UTF-8 bytes (the schema bound; config may set a lower one). */
export const VALUE_BYTES_MAX = 1024;

/**
 * A write's tag, compared lexicographically. `counter` orders writes (Attiya, Bar-Noy, Dolev 1995,
 * §3: the timestamp); `node` breaks ties between coordinators (Lynch & Shvartsman 1997, the
 * multi-writer variant); `incarnation` and `seq` make every tag unique even when one coordinator
 * runs two writes at once (both read the same max counter) or restarts and reuses a counter it
 * had sent to a minority before crashing.
 */
export const tagSchema = s.struct({ counter: s.uint, node: s.uint, incarnation: s.uint, seq: s.uint });
export type Tag = Infer<typeof tagSchema>;

export const valueSchema = s.nullable(s.string({ bytesMax: VALUE_BYTES_MAX }));

/** Replica-to-replica messages. `incarnation` + `seq` name the coordinator's operation. */
export const messageSchema = s.union('type', {
  /** Phase 1: what is your (tag, value)? */
  query: s.struct({ incarnation: s.uint, seq: s.uint }),
  queryAck: s.struct({ incarnation: s.uint, seq: s.uint, tag: tagSchema, value: valueSchema }),
  /** Phase 2: store (tag, value) if newer; ack once a tag at least this new is durable. */
  store: s.struct({ incarnation: s.uint, seq: s.uint, tag: tagSchema, value: valueSchema }),
  storeAck: s.struct({ incarnation: s.uint, seq: s.uint }),
});
export type AbdMessage = Infer<typeof messageSchema>;

export const requestSchema = s.union('type', {
  read: s.struct({}),
  write: s.struct({ value: s.string({ bytesMax: VALUE_BYTES_MAX }) }),
});
export type AbdRequest = Infer<typeof requestSchema>;

export const responseSchema = s.union('type', {
  read: s.struct({ value: valueSchema }),
  write: s.struct({}),
  /** Rejected before it started (too many operations in flight): it did not take effect. */
  busy: s.struct({}),
  /** Rejected as malformed (e.g. value over the configured limit): it did not take effect. */
  invalid: s.struct({ reason: s.string({ bytesMax: 256 }) }),
});
export type AbdResponse = Infer<typeof responseSchema>;

/** Records of a replica's durable log. */
export const recordSchema = s.union('type', {
  /** Written (synced) at every boot before the node coordinates anything. */
  incarnation: s.struct({ incarnation: s.uint }),
  /** A newer (tag, value) stored. */
  store: s.struct({ tag: tagSchema, value: valueSchema }),
});
export type AbdRecord = Infer<typeof recordSchema>;

/** Everything durable in one value (log compaction). */
export const snapshotSchema = s.struct({ incarnation: s.uint, tag: tagSchema, value: valueSchema });
export type AbdSnapshot = Infer<typeof snapshotSchema>;

export const TAG_ZERO: Tag = Object.freeze({ counter: 0, node: 0, incarnation: 0, seq: 0 });

/** Lexicographic order on (counter, node, incarnation, seq): negative, zero or positive. */
export function compareTags(a: Tag, b: Tag): number {
  return a.counter - b.counter || a.node - b.node || a.incarnation - b.incarnation || a.seq - b.seq;
}

export function formatTag(tag: Tag): string {
  return `${tag.counter}.${tag.node}.${tag.incarnation}.${tag.seq}`;
}
