/** `node --import tsx bin/chord.ts <command> ...`: the `dsys chord` command line without the dsys CLI. */
import { chordCli } from '../src/real/cli.js';

process.exitCode = await chordCli(process.argv.slice(2));
