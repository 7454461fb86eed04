/** A real Raft key-value node process; `--help` lists its flags. */
import { runRaftNodeMain } from './node-main.js';

await runRaftNodeMain(process.argv.slice(2), { program: 'raft-node' });
