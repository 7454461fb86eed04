/**
 * Entry point of one Chord node process (what `dsys chord start` and the cluster helpers run):
 *
 *   node --import tsx src/real/main.ts [--host H] [--port P] [--join HOST:PORT,...] [--data-dir D]
 *        [--vnodes K] [--replicas R] [--successors N] [--tick-ms T] [--log-level L]
 *
 * Prints `ready: <host:port>` on stdout once it listens (the harness's readiness line), JSON logs on
 * stderr, and stops cleanly on SIGINT/SIGTERM (exit 0). Exit 1: it could not start (a corrupt or
 * locked data directory, another node's data directory, a port in use) or its disk failed.
 */
import { errorMessage } from '@dsys/kit';
import { isLogLevel, Logger } from '@dsys/runtime-node';
import { nodeFlagsUsage, parseNodeFlags } from './flags.js';
import { startChordNode } from './host.js';

export async function runChordNodeMain(argv: readonly string[]): Promise<number> {
  const parsed = parseNodeFlags(argv);
  if (!parsed.ok) {
    process.stderr.write(`chord node: ${parsed.error}\n${nodeFlagsUsage}\n`);
    return 2;
  }
  const flags = parsed.value;
  if (flags.help) {
    process.stdout.write(`${nodeFlagsUsage}\n`);
    return 0;
  }
  const level = isLogLevel(flags.logLevel) ? flags.logLevel : 'info';
  const logger = new Logger({ level, node: null, fields: { component: 'chord' } });
  let node: Awaited<ReturnType<typeof startChordNode>>;
  try {
    node = await startChordNode({
      host: flags.host,
      port: flags.port,
      join: flags.join,
      dataDir: flags.dataDir,
      onFatal: (error) => {
        process.stderr.write(`chord node: stopped: ${errorMessage(error)}\n`);
        process.exit(1);
      },
      tickMs: flags.tickMs,
      config: { vnodes: flags.vnodes, replicas: flags.replicas, successorListLength: flags.successors },
      log: (lvl, message, fields) => logger[lvl](message, fields ?? {}),
      onRangeChange: (event) =>
        logger.debug('key range changed', {
          vnode: event.vnode,
          from: event.from === null ? null : event.from.toString(16),
          to: event.to.toString(16),
        }),
    });
  } catch (error) {
    process.stderr.write(`chord node: could not start: ${errorMessage(error)}\n`);
    return 1;
  }
  if (flags.dataDir === null) logger.warn('no --data-dir: items are kept in memory only', {});
  process.stdout.write(`ready: ${node.address}\n`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  await node.close();
  return 0;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = await runChordNodeMain(process.argv.slice(2));
}
