/**
 * ZooKeeper's four-letter words (ruok, srvr, stat, mntr, conf), answered in ZooKeeper 3.8's text
 * formats from the node's status, so monitoring scripts written for ZooKeeper read them.
 */
import type { ServerStatus } from '../schema.js';
import { formatZxid } from '../types.js';

export const COORD_VERSION = '3.8.0-dsys-coord';

function mode(status: ServerStatus): string {
  if (status.peers.length === 1) return 'standalone';
  return status.role === 'leader' ? 'leader' : 'follower';
}

export function fourLetterAnswer(
  word: string,
  status: ServerStatus,
  connections: number,
  facts: Record<string, string | number>,
): string {
  switch (word) {
    case 'ruok':
      return 'imok';
    case 'srvr':
    case 'stat':
      return [
        `Zookeeper version: ${COORD_VERSION}, built on dsys`,
        ...(word === 'stat' ? ['Clients:', ` connections=${connections}`, ''] : []),
        'Latency min/avg/max: 0/0.0/0',
        `Received: ${status.readsServed + status.writesForwarded}`,
        `Sent: ${status.readsServed + status.writesForwarded}`,
        `Connections: ${connections}`,
        `Outstanding: ${status.outstanding}`,
        `Zxid: ${formatZxid(status.lastZxid)}`,
        `Mode: ${mode(status)}`,
        `Node count: ${status.nodeCount}`,
        '',
      ].join('\n');
    case 'mntr':
      return `${[
        ['zk_version', COORD_VERSION],
        ['zk_server_state', mode(status)],
        ['zk_znode_count', status.nodeCount],
        ['zk_watch_count', status.watchCount],
        ['zk_ephemerals_count', status.ephemeralCount],
        ['zk_approximate_data_size', status.dataBytes],
        ['zk_num_alive_connections', connections],
        ['zk_outstanding_requests', status.outstanding],
        ['zk_global_sessions', status.sessionCount],
        ['zk_zxid', formatZxid(status.lastZxid)],
        ['zk_raft_term', status.term],
        ['zk_raft_leader', status.leader],
        ['zk_raft_commit_index', status.commitIndex],
        ['zk_raft_applied_index', status.appliedIndex],
        ['zk_local_reads_served', status.readsServed],
        ['zk_writes_forwarded', status.writesForwarded],
        ['zk_forward_batches_sent', status.forwardBatchesSent],
        ['zk_forward_items_received', status.forwardItemsReceived],
        ...(status.role === 'leader' ? [['zk_followers', status.peers.length - 1]] : []),
      ]
        .map(([key, value]) => `${key}\t${value}`)
        .join('\n')}\n`;
    case 'conf':
      return `${Object.entries({
        serverId: status.node,
        tickTime: status.tickMs,
        minSessionTimeout: status.minSessionTimeoutMs,
        maxSessionTimeout: status.maxSessionTimeoutMs,
        ...facts,
      })
        .map(([key, value]) => `${key}=${value}`)
        .join('\n')}\n`;
    default:
      return `${word} is not executed because it is not supported by this server.\n`;
  }
}
