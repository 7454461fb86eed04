/**
 * Keys are bytes (etcd's model); the state machine holds them as *binary strings*, one UTF-16 code
 * unit per byte (0..255), so that they can key a `Map` and compare with `<` exactly as the bytes
 * compare (etcd orders keys bytewise). The native API's string keys and values are their UTF-8 bytes;
 * ASCII text is its own binary string, so the common case converts nothing.
 */

const textEncoder = new TextEncoder();
/** Not fatal: bytes written through the etcd API need not be UTF-8; the native API sees U+FFFD for those. */
const textDecoder = new TextDecoder('utf-8');

/** Above this length `String.fromCharCode.apply` takes chunks (argument count limits). */
const FROM_CHAR_CODE_CHUNK = 4096;

function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) >= 0x80) return false;
  return true;
}

export function binaryOf(bytes: Uint8Array): string {
  if (bytes.length <= 64) {
    let text = '';
    for (let i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]!);
    return text;
  }
  let text = '';
  for (let at = 0; at < bytes.length; at += FROM_CHAR_CODE_CHUNK) {
    text += String.fromCharCode.apply(null, bytes.subarray(at, at + FROM_CHAR_CODE_CHUNK) as unknown as number[]);
  }
  return text;
}

export function bytesOfBinary(binary: string): Uint8Array {
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** The binary string of `text`'s UTF-8 bytes. */
export function binaryOfText(text: string): string {
  return isAscii(text) ? text : binaryOf(textEncoder.encode(text));
}

/** `binary`'s bytes read as UTF-8 (invalid sequences become U+FFFD). */
export function textOfBinary(binary: string): string {
  for (let i = 0; i < binary.length; i++) {
    if (binary.charCodeAt(i) >= 0x80) return textDecoder.decode(bytesOfBinary(binary));
  }
  return binary;
}

export function utf8Bytes(text: string): Uint8Array {
  if (text.length <= 64 && isAscii(text)) {
    const bytes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    return bytes;
  }
  return textEncoder.encode(text);
}

/** `bytes` read as UTF-8 (invalid sequences become U+FFFD). */
export function textOfBytes(bytes: Uint8Array): string {
  if (bytes.length <= 64) {
    let text = '';
    for (let i = 0; i < bytes.length; i++) {
      const byte = bytes[i]!;
      if (byte >= 0x80) return textDecoder.decode(bytes);
      text += String.fromCharCode(byte);
    }
    return text;
  }
  return textDecoder.decode(bytes);
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Bytewise order (etcd compares values this way). */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const difference = a[i]! - b[i]!;
    if (difference !== 0) return difference < 0 ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}
