/**
 * Records an operation history as clients run: `invoke` when a client sends a request, then exactly
 * one of `ok` (it took effect, with this output), `fail` (it definitely did not take effect) or
 * `info` (indeterminate: timed out or the connection dropped; it may take effect at any later time,
 * or never).
 *
 * Rules (Jepsen's process model, which the checker relies on):
 * - a client has at most one operation outstanding;
 * - a client whose operation ended 'info' is retired: it may still be in flight, so a later operation
 *   by the same client would no longer be sequential after it. Workloads continue under a fresh
 *   client number (Jepsen increments the process id by the concurrency the same way).
 *
 * Breaking a rule is a bug in the workload, so it is an assertion, not a typed error.
 */
import { assert } from '@dsys/kit';
import type { History, Operation, OperationStatus } from './types.js';

interface RecordedOperation<Input, Output> {
  readonly id: number;
  readonly client: number;
  readonly input: Input;
  readonly call: number;
  return: number;
  /** `null` while pending. */
  status: OperationStatus | null;
  output: Output | undefined;
}

export class HistoryRecorder<Input, Output> {
  private readonly operations: RecordedOperation<Input, Output>[] = [];
  /** client -> id of its outstanding operation. */
  private readonly outstanding = new Map<number, number>();
  /** client -> id of the 'info' operation that retired it. */
  private readonly retired = new Map<number, number>();

  /** Records a call; returns the operation id (ids are 0, 1, 2, ... in invocation order). */
  invoke(client: number, input: Input, time: number): number {
    assert(Number.isSafeInteger(client), `HistoryRecorder.invoke: client must be an integer, got ${client}`);
    assert(Number.isFinite(time), `HistoryRecorder.invoke: time must be finite, got ${time}`);
    const busy = this.outstanding.get(client);
    assert(busy === undefined, `HistoryRecorder.invoke: client ${client} still has operation ${busy} outstanding`);
    const retiredBy = this.retired.get(client);
    assert(
      retiredBy === undefined,
      `HistoryRecorder.invoke: client ${client} had indeterminate operation ${retiredBy}; ` +
        'continue under a fresh client number',
    );
    const id = this.operations.length;
    this.operations.push({
      id,
      client,
      input,
      call: time,
      return: Number.POSITIVE_INFINITY,
      status: null,
      output: undefined,
    });
    this.outstanding.set(client, id);
    return id;
  }

  /** The operation took effect and returned `output`. */
  ok(id: number, output: Output, time: number): void {
    const operation = this.pending(id, 'ok');
    this.assertReturn(operation, time, 'ok');
    this.end(operation, 'ok');
    operation.return = time;
    operation.output = output;
  }

  /** The operation definitely did not take effect (e.g. rejected before being applied). */
  fail(id: number, time: number): void {
    const operation = this.pending(id, 'fail');
    this.assertReturn(operation, time, 'fail');
    this.end(operation, 'fail');
    operation.return = time;
  }

  /** Indeterminate: the operation may take effect at any time after its call, or never. Retires the client. */
  info(id: number): void {
    const operation = this.pending(id, 'info');
    this.end(operation, 'info');
    this.retired.set(operation.client, id);
  }

  /** Number of operations invoked so far. */
  get size(): number {
    return this.operations.length;
  }

  /** The history so far; operations still pending are reported as 'info' (they may yet take effect). */
  history(): History<Input, Output> {
    return this.operations.map((operation): Operation<Input, Output> => {
      const status = operation.status ?? 'info';
      const base = { id: operation.id, client: operation.client, input: operation.input, call: operation.call };
      if (status === 'ok') return { ...base, return: operation.return, status, output: operation.output as Output };
      if (status === 'fail') return { ...base, return: operation.return, status };
      return { ...base, return: Number.POSITIVE_INFINITY, status };
    });
  }

  /** Checks everything before changing anything, so a caught assertion leaves the recorder intact. */
  private pending(id: number, status: OperationStatus): RecordedOperation<Input, Output> {
    const operation = this.operations[id];
    assert(operation !== undefined, `HistoryRecorder.${status}: unknown operation id ${id}`);
    assert(operation.status === null, `HistoryRecorder.${status}: operation ${id} already ended ${operation.status}`);
    assert(this.outstanding.get(operation.client) === id, `HistoryRecorder.${status}: operation ${id} not outstanding`);
    return operation;
  }

  private assertReturn(operation: RecordedOperation<Input, Output>, time: number, status: OperationStatus): void {
    assert(Number.isFinite(time), `HistoryRecorder.${status}: time must be finite, got ${time}`);
    assert(
      time >= operation.call,
      `HistoryRecorder.${status}: operation ${operation.id} returns at ${time} before its call`,
    );
  }

  private end(operation: RecordedOperation<Input, Output>, status: OperationStatus): void {
    operation.status = status;
    this.outstanding.delete(operation.client);
  }
}
