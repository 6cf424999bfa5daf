/**
 * `--probe`: asks the running sidecar's health listener for `/readyz` and turns the answer into an exit code, for
 * exec probes and postStart hooks that have no HTTP client of their own (CONTRIBUTING.md, "HTTP server hygiene").
 */
import { request as httpRequest } from 'node:http';
import type { Config } from '../config.ts';
import { SIDECAR_ENV } from '../contract.ts';
import { urlHost } from './addresses.ts';

/** A probe's answer is bounded: a hung sidecar must fail the probe, not hang it. */
const PROBE_TIMEOUT_MS = 3000;

export interface ProbeResult {
  /** 0 ready, 1 not ready (or unreachable), 2 the probe cannot run with this configuration. */
  readonly exitCode: number;
  /** The line for stderr when not ready. */
  readonly message: string | undefined;
}

export async function probe(config: Config): Promise<ProbeResult> {
  if (config.health.port === 0) return { exitCode: 2, message: `--probe needs a fixed ${SIDECAR_ENV.healthPort} (it is 0)` };
  const status = await readinessStatus(config);
  if (status === 200) return { exitCode: 0, message: undefined };
  return { exitCode: 1, message: `not ready: ${typeof status === 'number' ? `HTTP ${status}` : status}` };
}

/** The HTTP status of `/readyz`, or why there was none. */
function readinessStatus(config: Config): Promise<number | string> {
  const host = urlHost(config.health.address).replace(/^\[|\]$/g, '');
  return new Promise((resolve) => {
    const req = httpRequest({ host, port: config.health.port, path: '/readyz', timeout: PROBE_TIMEOUT_MS }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (error) => resolve(error.message));
    req.end();
  });
}
