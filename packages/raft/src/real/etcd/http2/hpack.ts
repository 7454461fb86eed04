/**
 * HPACK, the header compression of HTTP/2 (RFC 7541), for the purpose-built HTTP/2 endpoints that carry
 * unary gRPC: a full decoder, and an encoder that never uses a dynamic table.
 *
 * The decoder must follow the peer's encoder exactly: every literal "with incremental indexing" goes into
 * our copy of the dynamic table (newest first, index 62 and up, after the 61 static entries), entries
 * cost their name and value lengths plus 32 bytes, the oldest leave when the table would outgrow its
 * size, and the peer may shrink or regrow that size with an update at the start of a block, never above
 * our SETTINGS_HEADER_TABLE_SIZE. Any deviation is a COMPRESSION_ERROR, which kills the connection: the
 * two tables can no longer be trusted to agree.
 *
 * Our encoder only sends static-table references and literals "without indexing", so it keeps no state
 * and whatever table size the peer allows is irrelevant. A gRPC response is a handful of short fields:
 * the bytes a dynamic table would save are not worth the bookkeeping.
 *
 * Strings are latin1 both ways (one byte, one char code): HTTP/2 field values are octets, and grpc-go
 * sends only ASCII, so nothing is lost, and bytes round-trip.
 *
 * This is on the hot path of every request, hence the shape: a typical grpc-go request block is about
 * ten fields, most of them one-byte references to the static table (resolved to interned strings), plus
 * a Huffman-coded `grpc-timeout`. Huffman strings are decoded four bits at a time by a state machine
 * built once from the code table, and scratch memory is reused across calls.
 */
import { HUFFMAN_CODES, HUFFMAN_EOS, HUFFMAN_LENGTHS } from './huffman-table.js';

/** A header block that breaks RFC 7541 (a connection error COMPRESSION_ERROR in HTTP/2). */
export class HpackError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HpackError';
  }
}

/** A decoded header list: names and values alternate: [name0, value0, name1, value1, ...]. Names are lower-case as sent (not validated here). */
export type HeaderList = string[];

// ------------------------------------------------------------------------------------------------
// Static table (RFC 7541 Appendix A)

const STATIC_TABLE: readonly (readonly [string, string])[] = [
  [':authority', ''],
  [':method', 'GET'],
  [':method', 'POST'],
  [':path', '/'],
  [':path', '/index.html'],
  [':scheme', 'http'],
  [':scheme', 'https'],
  [':status', '200'],
  [':status', '204'],
  [':status', '206'],
  [':status', '304'],
  [':status', '400'],
  [':status', '404'],
  [':status', '500'],
  ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'],
  ['accept-language', ''],
  ['accept-ranges', ''],
  ['accept', ''],
  ['access-control-allow-origin', ''],
  ['age', ''],
  ['allow', ''],
  ['authorization', ''],
  ['cache-control', ''],
  ['content-disposition', ''],
  ['content-encoding', ''],
  ['content-language', ''],
  ['content-length', ''],
  ['content-location', ''],
  ['content-range', ''],
  ['content-type', ''],
  ['cookie', ''],
  ['date', ''],
  ['etag', ''],
  ['expect', ''],
  ['expires', ''],
  ['from', ''],
  ['host', ''],
  ['if-match', ''],
  ['if-modified-since', ''],
  ['if-none-match', ''],
  ['if-range', ''],
  ['if-unmodified-since', ''],
  ['last-modified', ''],
  ['link', ''],
  ['location', ''],
  ['max-forwards', ''],
  ['proxy-authenticate', ''],
  ['proxy-authorization', ''],
  ['range', ''],
  ['referer', ''],
  ['refresh', ''],
  ['retry-after', ''],
  ['server', ''],
  ['set-cookie', ''],
  ['strict-transport-security', ''],
  ['transfer-encoding', ''],
  ['user-agent', ''],
  ['vary', ''],
  ['via', ''],
  ['www-authenticate', ''],
];
const STATIC_COUNT = STATIC_TABLE.length;
/** By HPACK index (1-based; slot 0 is unused), so that a lookup is one array read. */
const STATIC_NAMES: readonly string[] = ['', ...STATIC_TABLE.map(([name]) => name)];
const STATIC_VALUES: readonly string[] = ['', ...STATIC_TABLE.map(([, value]) => value)];
/**
 * The encoder's lookup, by name: its first index, and the index of each of its values. Two steps, not
 * one map keyed by `name\0value`: concatenating and hashing a fresh key per field costs more than the
 * rest of the encoding, while names and values usually are literals whose hashes V8 keeps.
 */
const STATIC_BY_NAME = new Map<string, { readonly index: number; readonly values: Map<string, number> }>();
STATIC_TABLE.forEach(([name, value], i) => {
  let entry = STATIC_BY_NAME.get(name);
  if (entry === undefined) {
    entry = { index: i + 1, values: new Map() };
    STATIC_BY_NAME.set(name, entry);
  }
  entry.values.set(value, i + 1);
});

/** RFC 7541 section 4.1: an entry's size counts its name, its value and this much bookkeeping. */
const ENTRY_OVERHEAD = 32;
/** The initial SETTINGS_HEADER_TABLE_SIZE of HTTP/2 (RFC 9113 section 6.5.2). */
const DEFAULT_TABLE_SIZE = 4096;
/** As node's http2 advertises by default; a unary gRPC call's headers are a few hundred bytes. */
const DEFAULT_HEADER_LIST_BYTES_MAX = 65_536;
/** An integer is at most 2^31-1: five continuation bytes carry 35 bits, more is padding or an attack. */
const INT_CONTINUATIONS_MAX = 5;
const INT_MAX = 0x7fff_ffff;
/**
 * Strings shorter than these are decoded or written char by char, cheaper than a call into Buffer's
 * latin1 codec. Decoding stops earlier: V8 makes longer concatenations rope strings, slow to use later.
 */
const SHORT_STRING = 16;
const SHORT_WRITE = 64;

// ------------------------------------------------------------------------------------------------
// Huffman (RFC 7541 section 5.2, Appendix B)

/**
 * The decoding state machine. A state is an internal node of the code tree (256 of them for 257
 * symbols; 0 is the root): the bits read since the last symbol. `HUFFMAN_STEP[state << 4 | nibble]`
 * packs the state after those four bits (low byte), the symbol completed on the way if any (second
 * byte, with `STEP_EMIT`: codes are at least 5 bits long, so four bits complete at most one), and
 * `STEP_FAIL` when the walk hits EOS, which may only ever appear as padding.
 */
const HUFFMAN_STEP = new Uint32Array(256 * 16);
const STEP_EMIT = 0x1_0000;
const STEP_FAIL = 0x2_0000;
/**
 * States a string may end in: the pending bits are padding, which section 5.2 wants to be a prefix of
 * EOS (all ones) and shorter than a byte. That is the root and the first seven nodes down the 1 branch.
 */
const HUFFMAN_ACCEPT = new Uint8Array(256);

function buildHuffmanDecoder(): void {
  // children[node * 2 + bit]: an internal node's id, or ~symbol for a leaf; 0 (the root) means unset.
  const children = new Int32Array(256 * 2);
  let nodes = 1;
  for (let symbol = 0; symbol <= HUFFMAN_EOS; symbol++) {
    const code = HUFFMAN_CODES[symbol]!;
    let node = 0;
    for (let bit = HUFFMAN_LENGTHS[symbol]! - 1; bit > 0; bit--) {
      const slot = node * 2 + ((code >>> bit) & 1);
      if (children[slot] === 0) children[slot] = nodes++;
      node = children[slot]!;
    }
    children[node * 2 + (code & 1)] = ~symbol;
  }
  if (nodes !== 256) throw new Error(`Huffman table is not a complete code (${nodes} internal nodes)`);
  for (let node = 0, depth = 0; depth <= 7; depth++) {
    HUFFMAN_ACCEPT[node] = 1;
    node = children[node * 2 + 1]!;
  }
  for (let state = 0; state < 256; state++) {
    for (let nibble = 0; nibble < 16; nibble++) {
      let node = state;
      let step = 0;
      for (let bit = 3; bit >= 0; bit--) {
        const next = children[node * 2 + ((nibble >>> bit) & 1)]!;
        if (next >= 0) {
          node = next;
        } else if (~next === HUFFMAN_EOS) {
          step = STEP_FAIL;
          break;
        } else {
          step = STEP_EMIT | (~next << 8);
          node = 0;
        }
      }
      HUFFMAN_STEP[(state << 4) | nibble] = step | node;
    }
  }
}
buildHuffmanDecoder();

/** Where Huffman output lands before it becomes a string; grows, never shrinks. */
let huffmanScratch = Buffer.allocUnsafeSlow(256);

function huffmanDecodeRange(src: Uint8Array, start: number, stop: number): string {
  // The shortest code is 5 bits, so n bytes decode to at most 8n/5 symbols.
  const outMax = Math.ceil(((stop - start) * 8) / 5);
  if (outMax > huffmanScratch.length) {
    huffmanScratch = Buffer.allocUnsafeSlow(Math.max(outMax, huffmanScratch.length * 2));
  }
  const out = huffmanScratch;
  let state = 0;
  let n = 0;
  for (let i = start; i < stop; i++) {
    const byte = src[i]!;
    let step = HUFFMAN_STEP[(state << 4) | (byte >>> 4)]!;
    if ((step & STEP_FAIL) !== 0) throw new HpackError('EOS inside a Huffman-coded string');
    if ((step & STEP_EMIT) !== 0) out[n++] = (step >>> 8) & 0xff;
    state = step & 0xff;
    step = HUFFMAN_STEP[(state << 4) | (byte & 0x0f)]!;
    if ((step & STEP_FAIL) !== 0) throw new HpackError('EOS inside a Huffman-coded string');
    if ((step & STEP_EMIT) !== 0) out[n++] = (step >>> 8) & 0xff;
    state = step & 0xff;
  }
  if (HUFFMAN_ACCEPT[state] === 0) throw new HpackError('Huffman padding is not a prefix of EOS under 8 bits');
  return latin1(out, 0, n);
}

/** Huffman-decodes a string (exported for tests). */
export function huffmanDecode(bytes: Uint8Array): string {
  return huffmanDecodeRange(bytes, 0, bytes.length);
}

/** Huffman-encodes (exported for tests; used only by tests to build inputs). */
export function huffmanEncode(text: string): Buffer {
  let bits = 0;
  for (let i = 0; i < text.length; i++) bits += HUFFMAN_LENGTHS[latin1Code(text, i)]!;
  const out = Buffer.allocUnsafe(Math.ceil(bits / 8));
  // Codes reach 30 bits, and 7 bits may still be pending: past 32-bit shifts, so plain arithmetic.
  let pending = 0;
  let pendingBits = 0;
  let at = 0;
  for (let i = 0; i < text.length; i++) {
    const symbol = latin1Code(text, i);
    const length = HUFFMAN_LENGTHS[symbol]!;
    pending = pending * 2 ** length + HUFFMAN_CODES[symbol]!;
    pendingBits += length;
    while (pendingBits >= 8) {
      pendingBits -= 8;
      const unit = 2 ** pendingBits;
      out[at++] = Math.floor(pending / unit);
      pending %= unit;
    }
  }
  // Pad with the most significant bits of EOS, all ones.
  if (pendingBits > 0) out[at] = pending * 2 ** (8 - pendingBits) + (0xff >>> pendingBits);
  return out;
}

function latin1Code(text: string, i: number): number {
  const code = text.charCodeAt(i);
  if (code > 0xff) throw new RangeError(`not a latin1 string: char code ${code} at ${i}`);
  return code;
}

// ------------------------------------------------------------------------------------------------
// Decoder

/** `bytes[start, stop)` as a string, one char per byte. */
function latin1(bytes: Uint8Array, start: number, stop: number): string {
  if (stop - start < SHORT_STRING) {
    let text = '';
    for (let i = start; i < stop; i++) text += String.fromCharCode(bytes[i]!);
    return text;
  }
  const buffer = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return buffer.toString('latin1', start, stop);
}

/**
 * Decoded string literals by their raw bytes, so a client that repeats the same literal in every
 * request (":path", "content-type", "te" and "user-agent" sent without indexing, as a stateless
 * encoder does) costs a byte comparison instead of new strings: up to a string per character for the
 * short ones, plus the Huffman pass. Direct-mapped, LITERAL_CACHE_SLOTS slots of literals up to
 * LITERAL_CACHE_BYTES_MAX raw bytes; a hit compares every byte, so it never returns another string.
 */
const LITERAL_CACHE_SLOTS = 128;
const LITERAL_CACHE_BYTES_MAX = 64;
const literalBytes: (Uint8Array | null)[] = new Array<Uint8Array | null>(LITERAL_CACHE_SLOTS).fill(null);
const literalHuffman: boolean[] = new Array<boolean>(LITERAL_CACHE_SLOTS).fill(false);
const literalText: string[] = new Array<string>(LITERAL_CACHE_SLOTS).fill('');

function decodeLiteralOnce(block: Uint8Array, start: number, stop: number, huffman: boolean): string {
  return huffman ? huffmanDecodeRange(block, start, stop) : latin1(block, start, stop);
}

function decodeLiteral(block: Uint8Array, start: number, stop: number, huffman: boolean): string {
  const length = stop - start;
  if (length > LITERAL_CACHE_BYTES_MAX) return decodeLiteralOnce(block, start, stop, huffman);
  let hash = huffman ? 0x9e3779b1 : 0x811c9dc5;
  for (let i = start; i < stop; i++) hash = Math.imul(hash ^ block[i]!, 0x01000193);
  const slot = (hash ^ (hash >>> 15)) & (LITERAL_CACHE_SLOTS - 1);
  const cached = literalBytes[slot];
  if (cached != null && cached.length === length && literalHuffman[slot] === huffman) {
    let same = true;
    for (let i = 0; i < length; i++) {
      if (cached[i] !== block[start + i]) {
        same = false;
        break;
      }
    }
    if (same) return literalText[slot]!;
  }
  const text = decodeLiteralOnce(block, start, stop, huffman);
  // A copy: `block` may be a view of a buffer that is reused (Buffer#slice would also be a view).
  const copy = new Uint8Array(length);
  copy.set(block.subarray(start, stop));
  literalBytes[slot] = copy;
  literalHuffman[slot] = huffman;
  literalText[slot] = text;
  return text;
}

export class HpackDecoder {
  private readonly tableSizeMax: number;
  private readonly headerListBytesMax: number;
  /** The size the peer's encoder currently uses (its last update, or the protocol's initial size). */
  private tableSize: number;
  /** Sum of the entries' sizes, at most `tableSize`. */
  private tableBytes = 0;
  // The dynamic table: a ring of `count` entries from `start` (the oldest) on; capacity a power of two.
  private names: string[] = new Array<string>(32).fill('');
  private values: string[] = new Array<string>(32).fill('');
  private sizes: number[] = new Array<number>(32).fill(0);
  private mask = 31;
  private start = 0;
  private count = 0;
  /** Read position in the block being decoded, shared by the helpers below. */
  private pos = 0;

  /** tableSizeMax: our SETTINGS_HEADER_TABLE_SIZE (default 4096): the largest dynamic table size update the peer may ask for. headerListBytesMax: cap on the decoded list size as HTTP/2 counts it (sum of name length + value length + 32 per field, in bytes); over it -> HpackError. */
  constructor(options: { tableSizeMax?: number; headerListBytesMax?: number } = {}) {
    this.tableSizeMax = options.tableSizeMax ?? DEFAULT_TABLE_SIZE;
    this.headerListBytesMax = options.headerListBytesMax ?? DEFAULT_HEADER_LIST_BYTES_MAX;
    // The table starts at the protocol's 4096 bytes when we advertise more: a larger size only applies
    // once the peer's encoder announces it with an update. A smaller maximum applies at once, as RFC
    // 7541's examples C.5/C.6 assume (256 from the start). On a connection that is racy: blocks the
    // peer encoded before our SETTINGS arrived may still fill 4096 bytes, so advertise at least that.
    this.tableSize = Math.min(this.tableSizeMax, DEFAULT_TABLE_SIZE);
  }

  /**
   * Decodes one complete header block (all HEADERS+CONTINUATION fragments concatenated). Throws
   * HpackError on any malformed input. After an error the block is abandoned part way, with its table
   * updates so far applied: the connection is dead anyway. The exception is a list over
   * `headerListBytesMax`: the whole block is still decoded, so the table stays in step with the peer,
   * and the error comes at the end.
   */
  decode(block: Uint8Array): HeaderList {
    const list: HeaderList = [];
    const end = block.length;
    let listBytes = 0;
    let fieldSeen = false;
    this.pos = 0;
    while (this.pos < end) {
      const first = block[this.pos]!;
      let name: string;
      let value: string;
      if (first >= 0x80) {
        // Indexed field (section 6.1), usually a one-byte static reference.
        let index = first & 0x7f;
        if (index < 0x7f) this.pos++;
        else index = this.integer(block, 0x7f);
        if (index === 0) throw new HpackError('indexed field with index 0');
        if (index <= STATIC_COUNT) {
          name = STATIC_NAMES[index]!;
          value = STATIC_VALUES[index]!;
        } else {
          const slot = this.dynamicSlot(index);
          name = this.names[slot]!;
          value = this.values[slot]!;
        }
      } else if (first >= 0x40) {
        // Literal with incremental indexing (section 6.2.1): the peer's table gains it, so ours does.
        name = this.literalName(block, 0x3f);
        value = this.string(block);
        this.insert(name, value);
      } else if (first >= 0x20) {
        // Dynamic table size update (section 6.3): only ahead of the block's first field (section 4.2).
        if (fieldSeen) throw new HpackError('dynamic table size update after a field');
        const size = this.integer(block, 0x1f);
        if (size > this.tableSizeMax) {
          throw new HpackError(
            `dynamic table size update to ${size} above SETTINGS_HEADER_TABLE_SIZE ${this.tableSizeMax}`,
          );
        }
        this.tableSize = size;
        while (this.tableBytes > size) this.evictOldest();
        continue;
      } else {
        // Literal without indexing (0000) or never indexed (0001), section 6.2.2/6.2.3: no table change.
        name = this.literalName(block, 0x0f);
        value = this.string(block);
      }
      fieldSeen = true;
      listBytes += name.length + value.length + ENTRY_OVERHEAD;
      if (listBytes <= this.headerListBytesMax) list.push(name, value);
    }
    if (listBytes > this.headerListBytesMax) {
      throw new HpackError(`header list of ${listBytes} bytes over ${this.headerListBytesMax}`);
    }
    return list;
  }

  /** An integer with an N-bit prefix (section 5.1), `mask` = 2^N - 1, starting at the current byte. */
  private integer(block: Uint8Array, mask: number): number {
    let pos = this.pos;
    let value = block[pos++]! & mask;
    if (value === mask) {
      let scale = 1;
      let continuations = 0;
      let byte: number;
      do {
        if (pos >= block.length) throw new HpackError('truncated integer');
        if (++continuations > INT_CONTINUATIONS_MAX) throw new HpackError('integer with too many continuation bytes');
        byte = block[pos++]!;
        value += (byte & 0x7f) * scale;
        scale *= 128;
      } while (byte >= 0x80);
      if (value > INT_MAX) throw new HpackError(`integer ${value} above 2^31-1`);
    }
    this.pos = pos;
    return value;
  }

  /** The name of a literal field: by index in the prefix (`mask` bits), or a string after it when 0. */
  private literalName(block: Uint8Array, mask: number): string {
    const index = this.integer(block, mask);
    if (index === 0) return this.string(block);
    if (index <= STATIC_COUNT) return STATIC_NAMES[index]!;
    return this.names[this.dynamicSlot(index)]!;
  }

  /** A string literal (section 5.2): H flag, 7-bit prefix length, octets. */
  private string(block: Uint8Array): string {
    if (this.pos >= block.length) throw new HpackError('truncated string');
    const huffman = block[this.pos]! >= 0x80;
    const length = this.integer(block, 0x7f);
    const start = this.pos;
    const stop = start + length;
    if (stop > block.length) throw new HpackError(`string of ${length} bytes past the end of the block`);
    this.pos = stop;
    return decodeLiteral(block, start, stop, huffman);
  }

  /** The ring slot of dynamic index `index` (62 is the newest entry). */
  private dynamicSlot(index: number): number {
    const age = index - STATIC_COUNT - 1;
    if (age >= this.count) throw new HpackError(`index ${index} beyond the ${this.count}-entry dynamic table`);
    return (this.start + this.count - 1 - age) & this.mask;
  }

  /** Section 4.4: evict from the old end until the entry fits; one larger than the table empties it. */
  private insert(name: string, value: string): void {
    const size = name.length + value.length + ENTRY_OVERHEAD;
    if (size > this.tableSize) {
      while (this.count > 0) this.evictOldest();
      return;
    }
    while (this.tableBytes + size > this.tableSize) this.evictOldest();
    if (this.count === this.names.length) this.grow();
    const slot = (this.start + this.count) & this.mask;
    this.names[slot] = name;
    this.values[slot] = value;
    this.sizes[slot] = size;
    this.count++;
    this.tableBytes += size;
  }

  private evictOldest(): void {
    const slot = this.start;
    this.tableBytes -= this.sizes[slot]!;
    // Drop the strings: the ring outlives them.
    this.names[slot] = '';
    this.values[slot] = '';
    this.start = (slot + 1) & this.mask;
    this.count--;
  }

  /** Doubles the ring (a 4096-byte table holds at most 128 entries, so this happens a couple of times). */
  private grow(): void {
    const capacity = this.names.length * 2;
    const names = new Array<string>(capacity).fill('');
    const values = new Array<string>(capacity).fill('');
    const sizes = new Array<number>(capacity).fill(0);
    for (let i = 0; i < this.count; i++) {
      const slot = (this.start + i) & this.mask;
      names[i] = this.names[slot]!;
      values[i] = this.values[slot]!;
      sizes[i] = this.sizes[slot]!;
    }
    this.names = names;
    this.values = values;
    this.sizes = sizes;
    this.mask = capacity - 1;
    this.start = 0;
  }
}

// ------------------------------------------------------------------------------------------------
// Encoder

/** Where encodeHeaders writes before copying out the exact length; grows, never shrinks. */
let encodeScratch = Buffer.allocUnsafeSlow(1024);

/** Writes an integer with an N-bit prefix (section 5.1) after the `flags` bits; returns the next position. */
function writeInteger(out: Buffer, pos: number, flags: number, mask: number, value: number): number {
  if (value < mask) {
    out[pos++] = flags | value;
    return pos;
  }
  out[pos++] = flags | mask;
  value -= mask;
  while (value >= 0x80) {
    out[pos++] = (value & 0x7f) | 0x80;
    value >>>= 7;
  }
  out[pos++] = value;
  return pos;
}

/** A raw (H = 0) string literal; chars are written as latin1 bytes. */
function writeString(out: Buffer, pos: number, text: string): number {
  pos = writeInteger(out, pos, 0, 0x7f, text.length);
  if (text.length < SHORT_WRITE) {
    for (let i = 0; i < text.length; i++) out[pos++] = text.charCodeAt(i);
    return pos;
  }
  return pos + out.write(text, pos, 'latin1');
}

/** Encodes a header list without touching any dynamic table (stateless, so the peer's table size never matters): an exact static-table match is an indexed field; a static-table name match is a literal without indexing with the indexed name; otherwise a literal without indexing with a literal name. Strings are raw (no Huffman), latin1. */
export function encodeHeaders(headers: readonly string[]): Buffer {
  if (headers.length % 2 !== 0) throw new RangeError('a header list alternates names and values');
  let pos = 0;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    const value = headers[i + 1]!;
    // Worst case: a prefix byte, and each string's 5-byte length and its chars.
    const fieldMax = 11 + name.length + value.length;
    if (pos + fieldMax > encodeScratch.length) {
      const grown = Buffer.allocUnsafeSlow(Math.max(encodeScratch.length * 2, pos + fieldMax));
      encodeScratch.copy(grown, 0, 0, pos);
      encodeScratch = grown;
    }
    const out = encodeScratch;
    const entry = STATIC_BY_NAME.get(name);
    if (entry === undefined) {
      out[pos++] = 0x00;
      pos = writeString(out, pos, name);
      pos = writeString(out, pos, value);
      continue;
    }
    const pairIndex = entry.values.get(value);
    if (pairIndex !== undefined) {
      out[pos++] = 0x80 | pairIndex; // the static table ends at 61, so one byte always does
    } else {
      pos = writeInteger(out, pos, 0x00, 0x0f, entry.index);
      pos = writeString(out, pos, value);
    }
  }
  const encoded = Buffer.allocUnsafe(pos);
  encodeScratch.copy(encoded, 0, 0, pos);
  return encoded;
}
