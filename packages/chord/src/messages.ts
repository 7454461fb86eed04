/**
 * Every message between Chord nodes and every client request and response, declared once as kit
 * schemas: the TypeScript types, the binary wire format (the simulator's `wireCodec` and the TCP
 * runtime both use it), and the untrusted-input checks come from the same declaration.
 *
 * The RPCs follow the paper's pseudo-code (TON Fig. 5 and 6): `getPred` is "successor.predecessor",
 * `notify`, `ping` (check_predecessor), `findStep` (one step of an iterative find_successor),
 * `route` (a recursive one), plus the key-value layer's store/fetch/replicate/sync messages.
 * Requests carry an `rpc` number that the reply echoes; nodes match replies to their pending table.
 */
import { type Infer, type NodeId, type Schema, s } from '@dsys/kit';

export const KEY_BYTES_MAX = 256;
export const VALUE_BYTES_MAX = 64 * 1024;
/** Node refs in one list (successor lists, candidate lists, status). */
export const REFS_MAX = 256;
export const ITEMS_PER_MESSAGE_MAX = 256;
export const VERSIONS_PER_MESSAGE_MAX = 1024;
/** Virtual nodes per physical node (a node's vnode index is below this). */
export const VNODES_MAX = 64;
export const REASON_BYTES_MAX = 512;
/** Failed nodes a lookup step names (`findStep.avoid`). */
export const AVOID_MAX = 16;
const ID_BYTES_MAX = 20;

/** A ring identifier on the wire: big-endian bytes, no leading zeros (at most 20 for SHA-1). */
export const idSchema: Schema<bigint> = s.map(
  s.bytes({ bytesMax: ID_BYTES_MAX }),
  (bytes: Uint8Array) => {
    if (bytes.length > 0 && bytes[0] === 0) return { invalid: 'identifier with a leading zero byte' };
    let value = 0n;
    for (let i = 0; i < bytes.length; i++) value = (value << 8n) | BigInt(bytes[i]!);
    return value;
  },
  (value: bigint) => {
    if (typeof value !== 'bigint' || value < 0n || value >= 1n << 160n) {
      throw new RangeError('identifier must be a bigint in [0, 2^160)');
    }
    const out: number[] = [];
    for (let rest = value; rest > 0n; rest >>= 8n) out.unshift(Number(rest & 0xffn));
    return Uint8Array.from(out);
  },
  'chord-id',
);

const addressSchema = s.uint as Schema<number> as Schema<NodeId>;

/** A virtual node: its ring identifier, the physical node's address, and its index there. */
export const nodeRefSchema = s.struct({ id: idSchema, addr: addressSchema, vnode: s.u8 });
export type NodeRef = Infer<typeof nodeRefSchema>;

const refs = s.array(nodeRefSchema, { itemsMax: REFS_MAX });
const keySchema = s.string({ bytesMax: KEY_BYTES_MAX });
const valueSchema = s.bytes({ bytesMax: VALUE_BYTES_MAX });

/** A stored value and its version: `(seq, writer)` ordered lexicographically, last writer wins. */
export const itemSchema = s.struct({ key: keySchema, value: valueSchema, seq: s.uint, writer: s.uint });
export type Item = Infer<typeof itemSchema>;
export const versionSchema = s.struct({ key: keySchema, seq: s.uint, writer: s.uint });
export type Version = Infer<typeof versionSchema>;

export const LOOKUP_MODES = ['iterative', 'recursive'] as const;
export type LookupMode = (typeof LOOKUP_MODES)[number];
const lookupModeSchema = s.enum(LOOKUP_MODES);

export const STORE_OUTCOMES = ['ok', 'notResponsible', 'failed'] as const;

export const messageSchema = s.union('type', {
  getPred: s.struct({ rpc: s.uint, vnode: s.u8 }),
  predReply: s.struct({ rpc: s.uint, pred: s.nullable(nodeRefSchema), successors: refs }),
  notify: s.struct({ vnode: s.u8, node: nodeRefSchema }),
  ping: s.struct({ rpc: s.uint, vnode: s.u8 }),
  pong: s.struct({ rpc: s.uint, member: s.bool }),
  /** `avoid`: nodes the asker found failed; the answer must not rely on them (TON §IV.E). */
  findStep: s.struct({ rpc: s.uint, target: idSchema, avoid: s.array(addressSchema, { itemsMax: AVOID_MAX }) }),
  /** `member`: the answering node has a joined vnode (a joining node learns that nobody it knows is in a ring). */
  stepReply: s.struct({ rpc: s.uint, done: s.bool, nodes: refs, member: s.bool }),
  route: s.struct({ rpc: s.uint, lookup: s.uint, origin: addressSchema, target: idSchema, hops: s.uint }),
  routeAck: s.struct({ rpc: s.uint }),
  routeDone: s.struct({ lookup: s.uint, nodes: refs, hops: s.uint }),
  store: s.struct({ rpc: s.uint, key: keySchema, value: valueSchema }),
  storeReply: s.struct({
    rpc: s.uint,
    outcome: s.enum(STORE_OUTCOMES),
    seq: s.uint,
    writer: s.uint,
    replicas: s.uint,
  }),
  /** Copies of items: replication (`handoff` false) or a holder handing items back to their primary. */
  putItems: s.struct({
    rpc: s.uint,
    handoff: s.bool,
    items: s.array(itemSchema, { itemsMax: ITEMS_PER_MESSAGE_MAX }),
  }),
  /** The receiver's version of each item after merging, and (handoff) whether the sender should keep its copy. */
  itemsAck: s.struct({
    rpc: s.uint,
    versions: s.array(versionSchema, { itemsMax: ITEMS_PER_MESSAGE_MAX }),
    keep: s.array(s.bool, { itemsMax: ITEMS_PER_MESSAGE_MAX }),
  }),
  fetch: s.struct({ rpc: s.uint, key: keySchema }),
  fetchReply: s.struct({ rpc: s.uint, responsible: s.bool, item: s.nullable(itemSchema) }),
  syncOffer: s.struct({ rpc: s.uint, entries: s.array(versionSchema, { itemsMax: VERSIONS_PER_MESSAGE_MAX }) }),
  syncWant: s.struct({ rpc: s.uint, keys: s.array(keySchema, { itemsMax: VERSIONS_PER_MESSAGE_MAX }) }),
  leaving: s.struct({ vnode: s.u8, node: nodeRefSchema, pred: s.nullable(nodeRefSchema), successors: refs }),
});
export type ChordMessage = Infer<typeof messageSchema>;

export const requestSchema = s.union('type', {
  lookup: s.struct({ key: keySchema, mode: s.optional(lookupModeSchema) }),
  put: s.struct({ key: keySchema, value: valueSchema }),
  get: s.struct({ key: keySchema }),
  join: s.struct({ via: addressSchema }),
  leave: s.struct({}),
  status: s.struct({}),
});
export type ChordRequest = Infer<typeof requestSchema>;

export const fingerEntrySchema = s.struct({ index: s.u8, node: nodeRefSchema });
export const VNODE_STATUSES = ['idle', 'joining', 'joined', 'leaving', 'left'] as const;
export type VnodeStatus = (typeof VNODE_STATUSES)[number];

export const vnodeStatusSchema = s.struct({
  self: nodeRefSchema,
  status: s.enum(VNODE_STATUSES),
  pred: s.nullable(nodeRefSchema),
  successors: refs,
  /** Distinct fingers only: the first index at which each new node appears. */
  fingers: s.array(fingerEntrySchema, { itemsMax: REFS_MAX }),
  primaryItems: s.uint,
});
export type VnodeStatusReport = Infer<typeof vnodeStatusSchema>;

export const ERROR_CODES = [
  'NOT_JOINED',
  'ALREADY_JOINED',
  'LOOKUP_FAILED',
  'TIMEOUT',
  'REPLICATION_FAILED',
  'BUSY',
  'INVALID',
] as const;
export type ChordErrorCode = (typeof ERROR_CODES)[number];

export const statsSchema = s.struct({
  lookups: s.uint,
  lookupHops: s.uint,
  lookupFailures: s.uint,
  timeouts: s.uint,
  rejected: s.uint,
  rangeChanges: s.uint,
  itemsTransferred: s.uint,
});
export type ChordStats = Infer<typeof statsSchema>;

export const responseSchema = s.union('type', {
  lookup: s.struct({ keyId: idSchema, node: nodeRefSchema, successors: refs, hops: s.uint, timeouts: s.uint }),
  put: s.struct({ seq: s.uint, writer: s.uint, replicas: s.uint }),
  get: s.struct({ found: s.bool, value: s.nullable(valueSchema), seq: s.uint, writer: s.uint }),
  ok: s.struct({}),
  status: s.struct({
    address: s.uint,
    name: s.string({ bytesMax: 64 }),
    idBits: s.u8,
    vnodes: s.array(vnodeStatusSchema, { itemsMax: VNODES_MAX }),
    items: s.uint,
    stats: statsSchema,
    recentRejections: s.array(s.string({ bytesMax: REASON_BYTES_MAX }), { itemsMax: 16 }),
  }),
  error: s.struct({ code: s.enum(ERROR_CODES), reason: s.string({ bytesMax: REASON_BYTES_MAX }) }),
});
export type ChordResponse = Infer<typeof responseSchema>;
export type StatusResponse = Extract<ChordResponse, { type: 'status' }>;

/** Last writer wins: compares `(seq, writer)`. */
export function compareVersions(a: { seq: number; writer: number }, b: { seq: number; writer: number }): number {
  if (a.seq !== b.seq) return a.seq < b.seq ? -1 : 1;
  if (a.writer !== b.writer) return a.writer < b.writer ? -1 : 1;
  return 0;
}

export function sameRef(a: NodeRef | null, b: NodeRef | null): boolean {
  if (a === null || b === null) return a === b;
  return a.addr === b.addr && a.vnode === b.vnode;
}
