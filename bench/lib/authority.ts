/**
 * Parent side of bench/servers/authority-host.ts: forks it, waits for its `ready` message, and offers its call
 * counter and fault injection as promises. Always stop it (it also exits when this process goes away).
 */
import { fork } from 'node:child_process';
import { join } from 'node:path';
import type { EndpointKind, FaultSpec } from '../../test/authority/authority.ts';
import type { AuthorityHostInfo } from '../servers/authority-host.ts';
import { track } from './processes.ts';

export interface AuthorityHost {
  readonly info: AuthorityHostInfo;
  calls(filter?: { endpoint?: EndpointKind; scope?: string }): Promise<number>;
  setFault(fault: FaultSpec | undefined): Promise<void>;
  resetCalls(): Promise<void>;
  stop(): Promise<void>;
}

export async function startAuthorityHost(root: string, timeoutMs = 30_000): Promise<AuthorityHost> {
  const child = fork(join(root, 'bench/servers/authority-host.ts'), [], { execPath: process.execPath, stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  track(child);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    if (stderr.length < 16_384) stderr += chunk.toString('utf8');
  });
  const pending = new Map<number, (result: unknown) => void>();
  let nextId = 1;
  const info = await new Promise<AuthorityHostInfo>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`test authority not ready within ${timeoutMs} ms: ${stderr}`));
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`test authority exited (${code}): ${stderr}`));
    });
    child.on('message', (message: { type?: string; info?: AuthorityHostInfo; id?: number; result?: unknown }) => {
      if (message.type === 'ready' && message.info) {
        clearTimeout(timer);
        resolve(message.info);
        return;
      }
      if (message.id !== undefined) {
        pending.get(message.id)?.(message.result);
        pending.delete(message.id);
      }
    });
  });
  const ask = (request: Record<string, unknown>): Promise<unknown> =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      const timer = setTimeout(() => reject(new Error(`test authority did not answer ${String(request.op)}`)), 10_000);
      pending.set(id, (result) => {
        clearTimeout(timer);
        resolve(result);
      });
      child.send({ ...request, id });
    });
  return {
    info,
    calls: async (filter = {}) => Number(await ask({ op: 'calls', ...filter })),
    setFault: async (fault) => {
      await ask({ op: 'setFault', fault });
    },
    resetCalls: async () => {
      await ask({ op: 'resetCalls' });
    },
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      try {
        await ask({ op: 'stop' });
      } catch {
        child.kill('SIGKILL');
      }
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    },
  };
}
