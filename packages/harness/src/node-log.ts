/**
 * One node's log across restarts: every stdout/stderr line goes to `<dataDir>/node-<id>.log` (appended,
 * so a restarted node's log follows its previous life) and the last lines stay in memory, so an error
 * about the node (not ready in time, died unexpectedly) can quote them without reading the file.
 */
import { createWriteStream, type WriteStream } from 'node:fs';

/** A partial line longer than this is cut into a line of its own, bounding memory per stream. */
const LINE_CHARS_MAX = 64 * 1024;
/** Lines kept in memory are shortened to this many characters. */
const TAIL_LINE_CHARS_MAX = 500;

export class NodeLog {
  readonly path: string;
  private readonly tailLinesMax: number;
  private readonly tail: string[] = [];
  private readonly file: WriteStream;
  private fileError: Error | null = null;

  constructor(path: string, tailLinesMax: number) {
    if (!Number.isSafeInteger(tailLinesMax) || tailLinesMax < 1) {
      throw new RangeError(`log tail lines must be a positive integer, got ${tailLinesMax}`);
    }
    this.path = path;
    this.tailLinesMax = tailLinesMax;
    this.file = createWriteStream(path, { flags: 'a' });
    this.file.on('error', (error) => {
      // The in-memory tail keeps working; report the file problem once instead of crashing the test.
      if (this.fileError === null) process.stderr.write(`harness: cannot write ${path}: ${error.message}\n`);
      this.fileError = error;
    });
  }

  append(line: string): void {
    // A straggling line after close (a pipe that outlived its process) still reaches the tail.
    if (this.fileError === null && !this.file.writableEnded) this.file.write(`${line}\n`);
    this.tail.push(line.length > TAIL_LINE_CHARS_MAX ? `${line.slice(0, TAIL_LINE_CHARS_MAX)}...` : line);
    if (this.tail.length > this.tailLinesMax) this.tail.shift();
  }

  /** The last lines, oldest first. */
  lines(): string[] {
    return [...this.tail];
  }

  /** Flushes and closes the file. */
  close(): Promise<void> {
    if (this.file.destroyed || this.file.writableFinished) return Promise.resolve();
    return new Promise((resolve) => this.file.end(resolve));
  }
}

/** Splits a byte stream into lines, calling `onLine` for each complete one (without the newline). */
export class LineSplitter {
  private partial = '';
  private readonly onLine: (line: string) => void;

  constructor(onLine: (line: string) => void) {
    this.onLine = onLine;
  }

  push(chunk: Buffer | string): void {
    const text = this.partial + chunk.toString();
    const lines = text.split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) this.onLine(line.endsWith('\r') ? line.slice(0, -1) : line);
    while (this.partial.length > LINE_CHARS_MAX) {
      this.onLine(this.partial.slice(0, LINE_CHARS_MAX));
      this.partial = this.partial.slice(LINE_CHARS_MAX);
    }
  }

  /** Emits the last line if the stream ended without a newline. */
  flush(): void {
    if (this.partial.length > 0) this.onLine(this.partial);
    this.partial = '';
  }
}
