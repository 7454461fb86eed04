/** The real-process side of Chord: the `dsys chord` CLI, the node host, and local clusters. */
export { chordCli } from './cli.js';
export { CHORD_MAIN, type ChordClusterOptions, startChordCluster } from './cluster.js';
export { type ChordNodeOptions, type RunningChordNode, startChordNode } from './host.js';
export { type ChordService, chordService } from './service.js';
