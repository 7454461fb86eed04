/**
 * Faults as data: one `FaultAction` type for scripted schedules (scenario tests) and for the swarm
 * injector, so both go through the same code and print the same trace lines.
 *
 * The swarm injector wakes every `faultIntervalMs` during the safety phase and rolls each ratio in a
 * fixed order (partition, heal, crash, restart) from the `faults` stream.
 */
import type { Rng } from '@dsys/kit';
import { formatRatio, type Ratio, type SimOptions } from './options.js';

export type FaultAction =
  | { readonly type: 'crash'; readonly node: number; readonly torn?: boolean }
  | { readonly type: 'restart'; readonly node: number }
  /** Nodes in different groups cannot talk; nodes in no group form one more group. */
  | { readonly type: 'partition'; readonly groups: readonly (readonly number[])[] }
  /** One-way: packets from `from` to `to` are dropped, the other direction still works. */
  | { readonly type: 'cut'; readonly from: number; readonly to: number }
  | { readonly type: 'heal' }
  | { readonly type: 'loss'; readonly ratio: Ratio }
  | { readonly type: 'duplicate'; readonly ratio: Ratio };

export interface ScriptedFault {
  readonly atMs: number;
  readonly action: FaultAction;
}

export function describeFault(action: FaultAction): string {
  switch (action.type) {
    case 'crash':
      return `crash n${action.node}${action.torn === true ? ' (torn write)' : ''}`;
    case 'restart':
      return `restart n${action.node}`;
    case 'partition':
      return `partition ${action.groups.map((group) => group.map((id) => `n${id}`).join(' ')).join(' | ')}`;
    case 'cut':
      return `cut n${action.from} -> n${action.to}`;
    case 'heal':
      return 'heal';
    case 'loss':
      return `loss ${formatRatio(action.ratio)}`;
    case 'duplicate':
      return `duplicate ${formatRatio(action.ratio)}`;
  }
}

/** Small numbers folded into the trace hash per fault. */
export function faultCode(action: FaultAction): number {
  switch (action.type) {
    case 'crash':
      return action.torn === true ? 11 : 10;
    case 'restart':
      return 12;
    case 'partition':
      return 13;
    case 'cut':
      return 14;
    case 'heal':
      return 15;
    case 'loss':
      return 16;
    case 'duplicate':
      return 17;
  }
}

function chance(rng: Rng, value: Ratio): boolean {
  return value.numerator !== 0 && rng.chance(value.numerator, value.denominator);
}

/** A random symmetric split into two non-empty sides. */
function drawSplit(rng: Rng, nodeIds: readonly number[]): FaultAction {
  const shuffled = rng.shuffle([...nodeIds]);
  const cutAt = rng.between(1, shuffled.length - 1);
  const side = shuffled.slice(0, cutAt).sort((a, b) => a - b);
  return { type: 'partition', groups: [side] };
}

/** One-way cuts: either one node stops being heard (all its outbound links) or a few random links. */
function drawCuts(rng: Rng, nodeIds: readonly number[]): FaultAction[] {
  const actions: FaultAction[] = [];
  if (rng.boolean()) {
    const muted = rng.pick(nodeIds);
    for (const to of nodeIds) if (to !== muted) actions.push({ type: 'cut', from: muted, to });
    return actions;
  }
  const count = rng.between(1, nodeIds.length);
  for (let i = 0; i < count; i++) {
    const from = rng.pick(nodeIds);
    const to = rng.pick(nodeIds);
    if (from !== to) actions.push({ type: 'cut', from, to });
  }
  return actions;
}

/** The swarm injector's decisions for one wake-up. */
export function drawFaults(
  rng: Rng,
  options: SimOptions,
  upIds: readonly number[],
  downIds: readonly number[],
  cuts: number,
): FaultAction[] {
  const nodeIds = [...upIds, ...downIds].sort((a, b) => a - b);
  const actions: FaultAction[] = [];
  if (nodeIds.length >= 2 && chance(rng, options.partitionRatio)) {
    if (chance(rng, options.asymmetricRatio)) actions.push(...drawCuts(rng, nodeIds));
    else actions.push(drawSplit(rng, nodeIds));
  }
  if (cuts > 0 && chance(rng, options.healRatio)) actions.push({ type: 'heal' });
  if (upIds.length > 0 && downIds.length < options.crashedMax && chance(rng, options.crashRatio)) {
    actions.push({ type: 'crash', node: rng.pick(upIds), torn: chance(rng, options.tornWriteRatio) });
  }
  if (downIds.length > 0 && chance(rng, options.restartRatio)) {
    actions.push({ type: 'restart', node: rng.pick(downIds) });
  }
  return actions;
}
