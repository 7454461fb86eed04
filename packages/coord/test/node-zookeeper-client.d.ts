// The parts of node-zookeeper-client 1.1.3 (plain JavaScript, no bundled types) that the tests use.
declare module 'node-zookeeper-client' {
  type Callback = (error: unknown, ...results: never[]) => void;
  interface Transaction {
    create(path: string, data?: Buffer, mode?: number): Transaction;
    setData(path: string, data: Buffer, version?: number): Transaction;
    check(path: string, version?: number): Transaction;
    remove(path: string, version?: number): Transaction;
    commit(callback: Callback): void;
  }
  interface Client {
    connect(): void;
    close(): void;
    once(event: 'connected' | 'expired' | 'disconnected', listener: () => void): void;
    on(event: string, listener: (...args: unknown[]) => void): void;
    getSessionId(): Buffer;
    create(path: string, data: Buffer, callback: Callback): void;
    create(path: string, data: Buffer, mode: number, callback: Callback): void;
    remove(path: string, version: number, callback: Callback): void;
    exists(path: string, callback: Callback): void;
    exists(path: string, watcher: (event: { getName(): string }) => void, callback: Callback): void;
    getData(path: string, callback: Callback): void;
    getData(path: string, watcher: (event: { getName(): string }) => void, callback: Callback): void;
    setData(path: string, data: Buffer, version: number, callback: Callback): void;
    getChildren(path: string, callback: Callback): void;
    getChildren(path: string, watcher: (event: { getName(): string }) => void, callback: Callback): void;
    transaction(): Transaction;
  }
  const zookeeper: {
    createClient(
      connectString: string,
      options?: { sessionTimeout?: number; spinDelay?: number; retries?: number },
    ): Client;
    CreateMode: { PERSISTENT: number; PERSISTENT_SEQUENTIAL: number; EPHEMERAL: number; EPHEMERAL_SEQUENTIAL: number };
  };
  export default zookeeper;
}
