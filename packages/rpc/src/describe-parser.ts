/**
 * Rebuilds kit schemas from their canonical `describe()` text, so a client that knows nothing of an
 * interface at compile time (the `dsys rpc` CLI) can encode arguments and decode results from the
 * procedure texts a server sends on request. The rebuilt schema describes itself with exactly the same
 * text (checked by the caller), so it has the same wire format.
 *
 * Grammar (kit/src/codec.ts):
 *   type  := u8 | u16 | u32 | i32 | uint | int | f64 | u64 | i64 | bool
 *          | string<=N | bytes<=N | literal(JSON) | enum(a|b|...) | array<=N(type)
 *          | optional(type) | nullable(type) | struct{name:type,...} | union(tag){name:struct{...},...}
 *   procedure := (unary|stream) name(type) -> type [idempotent]
 *          | map:name(type)
 * `lazy:name` types cannot be rebuilt (their text names the type instead of spelling it out).
 */
import { type Schema, s } from '@dsys/kit';
import { type AnyProcedure, stream, unary } from './interface.js';

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

const SCALARS: Record<string, Schema<unknown>> = {
  u8: s.u8,
  u16: s.u16,
  u32: s.u32,
  i32: s.i32,
  uint: s.uint,
  int: s.int,
  f64: s.f64,
  u64: s.u64,
  i64: s.i64,
  bool: s.bool,
};

class ParseError extends Error {}

class TypeParser {
  private at = 0;
  constructor(private readonly text: string) {}

  parseAll(): Schema<unknown> {
    const schema = this.type();
    if (this.at !== this.text.length) this.fail('unexpected text after the type');
    return schema;
  }

  /** Parses one type starting here (used by the procedure parser too). */
  type(): Schema<unknown> {
    const word = this.word();
    const scalar = SCALARS[word];
    if (scalar !== undefined) return scalar;
    switch (word) {
      case 'string':
        return s.string({ bytesMax: this.bound() });
      case 'bytes':
        return s.bytes({ bytesMax: this.bound() });
      case 'array': {
        const itemsMax = this.bound();
        this.expect('(');
        const item = this.type();
        this.expect(')');
        return s.array(item, { itemsMax });
      }
      case 'optional':
      case 'nullable': {
        this.expect('(');
        const item = this.type();
        this.expect(')');
        return word === 'optional' ? s.optional(item) : s.nullable(item);
      }
      case 'literal':
        return this.literal();
      case 'enum':
        return this.enumeration();
      case 'struct':
        return this.struct();
      case 'union':
        return this.union();
      case 'map': {
        // `map:name(wire)`: an application mapping over a wire type; the bytes are the wire type's.
        this.expect(':');
        const name = this.word();
        this.expect('(');
        const wire = this.type();
        this.expect(')');
        return s.map(
          wire,
          (value) => value,
          (value) => value,
          name,
        );
      }
      case 'lazy':
        this.fail('a lazy (recursive) type cannot be rebuilt from its description');
        break;
      default:
        this.fail(`unknown type '${word}' (a named mapped type cannot be rebuilt)`);
    }
    throw new ParseError('unreachable');
  }

  private struct(): Schema<unknown> {
    this.expect('{');
    const fields: Record<string, Schema<unknown>> = {};
    if (!this.eat('}')) {
      do {
        const name = this.word();
        if (name in fields) this.fail(`duplicate field '${name}'`);
        this.expect(':');
        fields[name] = this.type();
      } while (this.eat(','));
      this.expect('}');
    }
    return s.struct(fields);
  }

  private union(): Schema<unknown> {
    this.expect('(');
    const tag = this.word();
    this.expect(')');
    this.expect('{');
    const variants: Record<string, Schema<object>> = {};
    do {
      const name = this.word();
      this.expect(':');
      const start = this.at;
      if (this.word() !== 'struct') this.fail('a union variant must be a struct');
      this.at = start;
      variants[name] = this.type() as Schema<object>;
    } while (this.eat(','));
    this.expect('}');
    return s.union(tag, variants) as Schema<unknown>;
  }

  private literal(): Schema<unknown> {
    this.expect('(');
    const rest = this.text.slice(this.at);
    // The literal is JSON: a string (which may contain ')' or ','), a number or a boolean.
    const match = /^("(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false)\)/.exec(rest);
    if (match === null) this.fail('bad literal');
    const json = match![1]!;
    this.at += json.length + 1;
    return s.literal(JSON.parse(json) as string | number | boolean);
  }

  private enumeration(): Schema<unknown> {
    this.expect('(');
    const end = this.text.indexOf(')', this.at);
    if (end < 0) this.fail('unterminated enum');
    const values = this.text.slice(this.at, end).split('|');
    if (values.length === 0 || values.some((value) => value === '')) this.fail('empty enum value');
    this.at = end + 1;
    return s.enum(values as [string, ...string[]]);
  }

  private bound(): number {
    this.expect('<=');
    const match = /^\d+/.exec(this.text.slice(this.at));
    if (match === null) this.fail('expected a size bound');
    this.at += match![0].length;
    const value = Number(match![0]);
    if (!Number.isSafeInteger(value)) this.fail('size bound too large');
    return value;
  }

  word(): string {
    const match = /^[A-Za-z_][A-Za-z0-9_.-]*/.exec(this.text.slice(this.at));
    if (match === null) this.fail('expected a name');
    this.at += match![0].length;
    return match![0];
  }

  expect(token: string): void {
    if (!this.eat(token)) this.fail(`expected '${token}'`);
  }

  eat(token: string): boolean {
    if (!this.text.startsWith(token, this.at)) return false;
    this.at += token.length;
    return true;
  }

  get position(): number {
    return this.at;
  }

  get done(): boolean {
    return this.at === this.text.length;
  }

  fail(message: string): never {
    throw new ParseError(`${message} at offset ${this.at} of "${this.text}"`);
  }
}

/** Rebuilds a schema from `schema.describe()` text. */
export function parseType(text: string): Parsed<Schema<unknown>> {
  try {
    return { ok: true, value: new TypeParser(text).parseAll() };
  } catch (error) {
    if (error instanceof ParseError || error instanceof TypeError) return { ok: false, error: error.message };
    throw error;
  }
}

/** Rebuilds a procedure from its canonical text (`unary add(struct{...}) -> struct{...} idempotent`). */
export function parseProcedure(text: string): Parsed<{ name: string; procedure: AnyProcedure }> {
  try {
    const parser = new TypeParser(text);
    const kind = parser.word();
    if (kind !== 'unary' && kind !== 'stream') parser.fail(`unknown procedure kind '${kind}'`);
    parser.expect(' ');
    const name = parser.word();
    parser.expect('(');
    const args = parser.type();
    parser.expect(') -> ');
    const output = parser.type();
    const idempotent = parser.eat(' idempotent');
    if (!parser.done) parser.fail('unexpected text after the procedure');
    if (kind === 'stream') {
      if (idempotent) parser.fail('a stream has no idempotent flag');
      return { ok: true, value: { name, procedure: stream({ args, item: output }) } };
    }
    return { ok: true, value: { name, procedure: unary({ args, result: output, idempotent }) } };
  } catch (error) {
    if (error instanceof ParseError || error instanceof TypeError) return { ok: false, error: error.message };
    throw error;
  }
}
