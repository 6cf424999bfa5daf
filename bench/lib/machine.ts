/**
 * What the numbers were measured on: CPU model, cores, memory, load average (the machine is shared, so the load
 * at run time is part of every figure), Node version, and the Node flags the container image passes to the
 * sidecar (read from the Dockerfile, so the benchmark runs the sidecar the way users' pods do).
 */
import { existsSync, readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';

export interface MachineInfo {
  readonly cpuModel: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly nodeVersion: string;
  readonly platform: string;
  /** 1/5/15-minute load averages when the run started and when it ended. */
  readonly loadAtStart: readonly number[];
  loadAtEnd: readonly number[];
}

export function describeMachine(): MachineInfo {
  const cpuList = cpus();
  return {
    cpuModel: cpuList[0]?.model.trim() ?? 'unknown',
    cores: cpuList.length,
    memoryGiB: totalmem() / 1024 ** 3,
    nodeVersion: process.version,
    platform: `${process.platform}-${process.arch}`,
    loadAtStart: loadavg(),
    loadAtEnd: loadavg(),
  };
}

export interface ImageNodeFlags {
  /** Flags placed between `node` and the script (exec-form ENTRYPOINT/CMD) plus NODE_OPTIONS set with ENV. */
  readonly flags: readonly string[];
  /** Where they came from, for the report. */
  readonly source: string;
  /** The image sets NODE_COMPILE_CACHE (warmed at build): the benchmark warms one the same way and uses it. */
  readonly compileCache: boolean;
}

/**
 * Node flags of the image: options from an exec-form `ENTRYPOINT ["node", "--flag", ...]` (up to the first
 * non-option) and from `ENV NODE_OPTIONS=...`. No Dockerfile: no flags, and the report says so.
 */
export function imageNodeFlags(root: string): ImageNodeFlags {
  const file = join(root, 'Dockerfile');
  if (!existsSync(file)) return { flags: [], source: 'no Dockerfile in the tree: Node defaults', compileCache: false };
  const text = readFileSync(file, 'utf8');
  const flags: string[] = [];
  for (const match of text.matchAll(/^\s*(?:ENTRYPOINT|CMD)\s+(\[.*\])\s*$/gm)) {
    let parts: unknown;
    try {
      parts = JSON.parse(match[1] ?? '[]');
    } catch {
      continue;
    }
    if (!Array.isArray(parts) || !/(^|\/)node$/.test(String(parts[0]))) continue;
    for (const part of parts.slice(1)) {
      if (typeof part !== 'string' || !part.startsWith('-')) break;
      flags.push(part);
    }
  }
  for (const match of text.matchAll(/^\s*ENV\s+NODE_OPTIONS[= ]"?([^"\n]*)"?\s*$/gm)) {
    flags.push(...(match[1] ?? '').split(/\s+/).filter(Boolean));
  }
  // The final stage's flags are what runs; duplicates from earlier stages are dropped.
  const compileCache = /^\s*ENV\s+NODE_COMPILE_CACHE[= ]\S+/m.test(text);
  return { flags: [...new Set(flags)], source: flags.length > 0 ? 'Dockerfile' : 'Dockerfile (no Node flags)', compileCache };
}
