/**
 * Serves the developer's own Azure CLI login as a managed identity to a docker compose project (README, "Your own
 * identity in containers"): one command, run on the host where `az login` was done.
 *
 *   npm run developer-identity -- [--app-env mi-anywhere.env] [--host-name host.docker.internal]
 *                                 [--address 0.0.0.0] [--port 50342]
 *
 * It writes an identity directory holding a single `credentialSource` file (`azure-cli`, plus the tenant of the
 * current login) into a private temporary directory, generates the secret, starts the sidecar (entra mode) on
 * `--address:--port`, and writes `--app-env` for the app containers: IDENTITY_ENDPOINT (reached through
 * `--host-name`) and IDENTITY_HEADER, i.e. the App Service dialect every Azure SDK speaks, which carries the secret.
 * The file is readable by the user only; the temporary directory is removed on exit (Ctrl-C). (The option is not
 * called `--env-file`: Node reads that name as its own option even after the script name.)
 *
 * This is a launcher (it sets the sidecar's environment and passes the rest of its own through, so `az` finds its
 * login, proxy and CA settings); the sidecar itself reads its settings only in sidecar/config.ts.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { APP_ENV, DEFAULT_TOKEN_PORT, IDENTITY_FILES, PATHS, SIDECAR_ENV, type CredentialSource } from '../sidecar/contract.ts';
import { ENV_BLOCK_END } from '../sidecar/startup/env-block.ts';

const DEVELOPER_IDENTITY = 'developer';
const root = resolve(import.meta.dirname, '..');

const { values } = parseArgs({
  options: {
    'app-env': { type: 'string', default: 'mi-anywhere.env' },
    'host-name': { type: 'string', default: 'host.docker.internal' },
    address: { type: 'string', default: '0.0.0.0' },
    port: { type: 'string', default: String(DEFAULT_TOKEN_PORT) },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});
if (values.help) {
  process.stdout.write('usage: npm run developer-identity -- [--app-env FILE] [--host-name NAME] [--address ADDR] [--port N]\n');
  process.exit(0);
}

/** The tenant of the current `az login`, or an actionable message when there is none. */
async function currentTenant(): Promise<string> {
  try {
    const { stdout } = await promisify(execFile)('az', ['account', 'show', '--query', 'tenantId', '--output', 'tsv'], { timeout: 60_000 });
    return stdout.trim();
  } catch (error) {
    const e = error as NodeJS.ErrnoException & { stderr?: string };
    const why = e.code === 'ENOENT' ? 'the Azure CLI (az) is not installed or not on PATH' : `az account show failed: ${(e.stderr ?? e.message).trim().split('\n')[0]}`;
    process.stderr.write(`developer-identity: ${why}. Run az login first.\n`);
    process.exit(2);
  }
}

const tenantId = await currentTenant();
const work = mkdtempSync(join(tmpdir(), 'mi-anywhere-developer-'));
const identityDir = join(work, 'identities');
mkdirSync(join(identityDir, DEVELOPER_IDENTITY), { recursive: true, mode: 0o700 });
const source: CredentialSource = 'azure-cli';
writeFileSync(join(identityDir, DEVELOPER_IDENTITY, IDENTITY_FILES.credentialSource), `${source}\n`);
if (tenantId !== '') writeFileSync(join(identityDir, DEVELOPER_IDENTITY, IDENTITY_FILES.tenantId), `${tenantId}\n`);

const secret = randomBytes(24).toString('hex');
const port = values.port;
const fixedPort = port !== '0';
const loopback = /^(127\.|::1$|localhost$)/.test(values.address);
const env: NodeJS.ProcessEnv = {
  ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MI_ANYWHERE_'))),
  [SIDECAR_ENV.mode]: 'entra',
  [SIDECAR_ENV.identityDir]: identityDir,
  [SIDECAR_ENV.defaultIdentity]: DEVELOPER_IDENTITY,
  [SIDECAR_ENV.identityHeader]: secret,
  [SIDECAR_ENV.tokenAddress]: values.address,
  [SIDECAR_ENV.tokenPort]: port,
  // Reachable beyond loopback (the containers come in through the host gateway): only requests carrying the secret
  // are served (docs/security.md, "The developer identity").
  ...(loopback ? {} : { [SIDECAR_ENV.allowNonLoopback]: 'true' }),
  ...(fixedPort ? { [SIDECAR_ENV.advertiseUrl]: `http://${values['host-name']}:${port}` } : {}),
  // The containers call it by --host-name; every other Host is refused (DNS-rebinding defence, docs/security.md).
  [SIDECAR_ENV.allowedHosts]: values['host-name'],
  [SIDECAR_ENV.healthAddress]: '127.0.0.1',
  [SIDECAR_ENV.healthPort]: '0',
  [SIDECAR_ENV.metricsAddress]: '127.0.0.1',
  [SIDECAR_ENV.metricsPort]: '0',
};

const envFile = resolve(values['app-env']);
const child = spawn(process.execPath, [join(root, 'sidecar', 'main.ts')], { env, stdio: ['ignore', 'pipe', 'inherit'] });
let printed = '';
let written = false;
child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
  process.stdout.write(chunk);
  if (written) return;
  printed += chunk;
  if (!printed.includes(`${ENV_BLOCK_END}\n`)) return;
  // The sidecar's own App Service line names the port it really listens on (also with --port 0).
  const endpoint = /^IDENTITY_ENDPOINT=(\S+)$/m.exec(printed)?.[1];
  if (endpoint === undefined) return;
  const url = new URL(endpoint);
  url.hostname = values['host-name'];
  writeFileSync(envFile, `${APP_ENV.identityEndpoint}=${url.origin}${PATHS.appService}\n${APP_ENV.identityHeader}=${secret}\n`, { mode: 0o600 });
  written = true;
  process.stderr.write(`developer-identity: wrote ${envFile}; give it to the app containers (env_file:) and reach the host as ${values['host-name']}\n`);
});

const cleanUp = (): void => rmSync(work, { recursive: true, force: true });
// Ctrl-C reaches the sidecar directly (same process group); forwarding SIGINT too would signal it twice and cut its
// drain short. Signals sent to this launcher alone are passed on.
process.on('SIGINT', () => undefined);
for (const signal of ['SIGTERM', 'SIGHUP'] as const) process.on(signal, () => child.kill('SIGTERM'));
child.on('exit', (code, signal) => {
  cleanUp();
  process.exit(code ?? (signal ? 1 : 0));
});
