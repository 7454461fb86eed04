/** A real ABD replica process; `--help` lists its flags. */
import { startAbdNode } from './index.js';

await startAbdNode(process.argv.slice(2));
