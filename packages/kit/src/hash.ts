/**
 * A fast, non-cryptographic 64-bit running hash (two 32-bit FNV-1a-style lanes with extra mixing),
 * used for simulator trace hashes: cheap enough to fold in every event at a million events a second.
 * Not for security: for that use @noble/hashes.
 */
export class TraceHasher {
  private high = 0x84222325;
  private low = 0xcbf29ce4;

  number(value: number): this {
    if (Number.isInteger(value) && value >= 0 && value <= 0xffff_ffff) return this.word(value);
    const text = String(value);
    return this.string(text);
  }

  word(value: number): this {
    this.low = Math.imul(this.low ^ value, 0x01000193);
    this.high = Math.imul(this.high ^ (value >>> 16) ^ (this.low >>> 7), 0x5bd1e995);
    return this;
  }

  string(text: string): this {
    for (let i = 0; i < text.length; i++) this.word(text.charCodeAt(i));
    return this.word(text.length);
  }

  bytes(data: Uint8Array): this {
    for (let i = 0; i < data.length; i++) this.word(data[i]!);
    return this.word(data.length);
  }

  digest(): string {
    let high = this.high >>> 0;
    let low = this.low >>> 0;
    // Final avalanche so near-identical traces give unrelated digests.
    high = Math.imul(high ^ (low >>> 15), 0x85ebca6b) >>> 0;
    low = Math.imul(low ^ (high >>> 13), 0xc2b2ae35) >>> 0;
    high = (high ^ (low >>> 16)) >>> 0;
    return high.toString(16).padStart(8, '0') + low.toString(16).padStart(8, '0');
  }
}
