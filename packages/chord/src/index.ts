export { type Addressing, addressName, ipv4Address, ipv4Endpoint, isValidAddress } from './address.js';
export { type Bootstrap, CHORD_CONFIG_DEFAULT, type ChordConfig, validateConfig } from './config.js';
export * from './messages.js';
export {
  type ChordEffect,
  type ChordEvent,
  ChordStartError,
  checkMessage,
  checkRef,
  chordInvariants,
  chordProtocol,
  initChord,
  statusOf,
  stepChord,
} from './protocol.js';
export * from './ring.js';
export { closestPreceding, localAnswer } from './routing.js';
export { chordSim } from './sim/system.js';
export type { ChordState, RangeEvent, StoredItem, Vnode } from './state.js';
export {
  primaryVnode,
  type RecoveryProblem,
  recordSchema,
  recoveredName,
  replicaTargets,
  snapshotSchema,
} from './store.js';
