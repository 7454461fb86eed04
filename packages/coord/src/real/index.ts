// The real-process side: the ZooKeeper client port, the node main, our client.
import { fileURLToPath } from 'node:url';

export { COORD_VERSION, fourLetterAnswer } from './four-letter.js';
export { COORD_FLAGS, coordStartUsage, runCoordMain } from './main.js';
export { ZkClient, type ZkClientOptions, ZkError } from './zk-client.js';
export { startZkServer, type ZkServer, type ZkServerOptions } from './zk-server.js';

/** Absolute path of the node entry point (what `dsys coord up` and the harness spawn). */
export const coordNodeEntry: string = fileURLToPath(new URL('./node-entry.ts', import.meta.url));
