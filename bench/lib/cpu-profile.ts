/**
 * Reads a V8 `.cpuprofile` (written by `node --cpu-prof`) and summarises where the time went: self time per
 * function, and self time grouped by area (node internals, pino, prom-client, the sidecar's own modules,
 * garbage collection, idle). Pure apart from reading the file.
 */
import { readFileSync } from 'node:fs';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export interface ProfileRow {
  readonly name: string;
  readonly selfMs: number;
  readonly share: number;
}

export interface ProfileSummary {
  readonly totalMs: number;
  /** Busy time: everything except `(idle)` and `(program)` outside JS. */
  readonly busyMs: number;
  readonly topFunctions: readonly ProfileRow[];
  readonly areas: readonly ProfileRow[];
}

/** Which part of the stack a frame belongs to, from its script URL. */
export function areaOf(frame: CallFrame, root: string): string {
  const { url, functionName } = frame;
  if (functionName === '(idle)') return '(idle)';
  if (functionName === '(garbage collector)') return '(garbage collector)';
  if (functionName === '(program)' || functionName === '(root)') return '(program: native, outside JS)';
  if (url === '') return 'native builtins';
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0] === 'internal' ? url.slice(5).split('/')[1] ?? 'internal' : url.slice(5)}`;
  const modules = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (modules?.[1]) return modules[1];
  const local = url.replace(`file://${root}/`, '');
  return local;
}

export function summariseProfile(file: string, root: string, top = 25): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i] ?? -1;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  const functions = new Map<string, number>();
  const areas = new Map<string, number>();
  let totalUs = 0;
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    totalUs += us;
    const area = areaOf(node.callFrame, root);
    if (area === '(idle)') idleUs += us;
    const where = node.callFrame.url ? `${areaOf(node.callFrame, root)}:${node.callFrame.lineNumber + 1}` : areaOf(node.callFrame, root);
    const name = `${node.callFrame.functionName || '(anonymous)'} (${where})`;
    functions.set(name, (functions.get(name) ?? 0) + us);
    areas.set(area, (areas.get(area) ?? 0) + us);
  }
  const busyUs = totalUs - idleUs;
  const rows = (map: Map<string, number>, limit: number): ProfileRow[] =>
    [...map.entries()]
      .filter(([name]) => !name.startsWith('(idle)'))
      .sort((a, b) => b[1] - a[1])
      .slice(0, limit)
      .map(([name, us]) => ({ name, selfMs: us / 1000, share: busyUs > 0 ? us / busyUs : 0 }));
  return { totalMs: totalUs / 1000, busyMs: busyUs / 1000, topFunctions: rows(functions, top), areas: rows(areas, 20) };
}
