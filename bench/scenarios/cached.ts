/**
 * Benchmark 1: a cached token through each dialect (IMDS, App Service 2019) at 1, 10 and 50 connections, next to
 * the two references serving the same body: a bare node:http server (the limit for a Node process) and a
 * minimal express route (the floor of that framework). The runs are closed loops (each connection sends its next
 * request when the previous answer arrives), so at 50 connections every target is saturated and Little's law
 * ties its mean latency to its throughput (mean = connections / throughput). A fixed-rate mode is deliberately
 * not used: autocannon paces `overallRate` by releasing each second's quota at once, and the bursts measure its
 * pacing, not the server.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { scratchDir, spawnServer, type Server } from '../lib/processes.ts';
import type { Programs, ReferenceKind } from '../lib/programs.ts';
import { appServiceRequest, imdsRequest, startSidecarProcess, type SidecarProcess } from '../lib/sidecar.ts';
import { runMatrix, type MatrixCell, type Target } from './load-matrix.ts';

export interface CachedResult {
  readonly bodyBytes: number;
  readonly cells: MatrixCell[];
}

export interface CachedOptions {
  readonly programs: Programs;
  readonly nodeFlags: readonly string[];
  readonly quick: boolean;
  readonly log: (line: string) => void;
}

export async function fetchBody(url: string, headers: Readonly<Record<string, string>>): Promise<Buffer> {
  const response = await fetch(url, { headers: { ...headers } });
  const body = Buffer.from(await response.arrayBuffer());
  if (response.status !== 200) throw new Error(`GET ${url} -> ${response.status}: ${body.toString('utf8').slice(0, 300)}`);
  return body;
}

export async function startReference(programs: Programs, kind: ReferenceKind, bodyFile: string, nodeFlags: readonly string[]): Promise<Server & { port: number }> {
  const server = await spawnServer({
    name: kind,
    command: process.execPath,
    args: [...nodeFlags, programs.reference(kind), bodyFile],
    readyPattern: /listening (\d+)/,
  });
  return Object.assign(server, { port: Number(server.match?.[1]) });
}

export async function runCached(options: CachedOptions): Promise<CachedResult> {
  const started: Server[] = [];
  try {
    const sidecar: SidecarProcess = await startSidecarProcess({ program: options.programs.sidecarMain, nodeFlags: options.nodeFlags, mode: { kind: 'dev' } });
    started.push(sidecar.server);
    const imds = imdsRequest();
    const appService = appServiceRequest(sidecar.identityHeader);
    // The references serve exactly the bytes the sidecar answers with (same token, same length).
    const body = await fetchBody(sidecar.baseUrl + imds.path, imds.headers);
    await fetchBody(sidecar.baseUrl + appService.path, appService.headers);
    const bodyFile = join(scratchDir('token'), 'token.json');
    writeFileSync(bodyFile, body);
    const bare = await startReference(options.programs, 'bare-http', bodyFile, options.nodeFlags);
    started.push(bare);
    const express = await startReference(options.programs, 'express-route', bodyFile, options.nodeFlags);
    started.push(express);
    const targets: Target[] = [
      { name: 'sidecar-imds', url: sidecar.baseUrl + imds.path, headers: imds.headers, pid: sidecar.server.pid },
      { name: 'sidecar-app-service', url: sidecar.baseUrl + appService.path, headers: appService.headers, pid: sidecar.server.pid },
      { name: 'bare-http', url: `http://127.0.0.1:${bare.port}${imds.path}`, headers: imds.headers, pid: bare.pid },
      { name: 'express-route', url: `http://127.0.0.1:${express.port}${imds.path}`, headers: imds.headers, pid: express.pid },
    ];
    const onResult = (target: string, r: { connections: number; rps: number; p99Ms: number }): void =>
      options.log(`  ${target} c=${r.connections}: ${r.rps.toFixed(0)} req/s, p99 ${r.p99Ms.toFixed(3)} ms`);
    const cells = await runMatrix({
      targets,
      connections: [1, 10, 50],
      rounds: options.quick ? 1 : 3,
      secondsPerRun: options.quick ? 0.5 : 3,
      warmupSeconds: options.quick ? 0.3 : 2,
      onResult,
    });
    return { bodyBytes: body.length, cells };
  } finally {
    for (const server of started.reverse()) await server.stop();
  }
}
