/**
 * The test authority as a process, for the compatibility matrix, metrics checks and benchmarks:
 *
 *   node test/authority/main.ts [--port N] [--tenant GUID] [--ca-file PATH] [--config apps.json]
 *                               [--token-lifetime SECONDS] [--service-account-issuer]
 *
 * Prints one JSON line on stdout once listening, then serves until SIGTERM/SIGINT:
 *   {"url":"https://127.0.0.1:PORT","host":"127.0.0.1:PORT","tenantId":"…","caFile":"/tmp/…/ca.pem",
 *    "apps":[{"clientId":…,"tenantId":…,"objectId":…}], "serviceAccountIssuer":{"issuer":…,"jwksUri":…}}
 * Steer it over HTTPS with the `/_test/*` admin API (README.md). Test-only: listens on 127.0.0.1 only.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { startTestAuthority, type AppRegistrationInput } from './authority.ts';
import { startServiceAccountIssuer } from './service-account-issuer.ts';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    tenant: { type: 'string' },
    'ca-file': { type: 'string' },
    config: { type: 'string' },
    'token-lifetime': { type: 'string' },
    'service-account-issuer': { type: 'boolean', default: false },
  },
  strict: true,
});

/** `--config` file: `{ "apps": [AppRegistrationInput, ...] }`; certificates may be given as PEM text or `@path`. */
interface ConfigFile {
  readonly apps?: readonly AppRegistrationInput[];
}

function readPem(value: string): string {
  return value.startsWith('@') ? readFileSync(value.slice(1), 'utf8') : value;
}

const serviceAccountIssuer = values['service-account-issuer'] ? await startServiceAccountIssuer() : undefined;
const authority = await startTestAuthority({
  port: Number(values.port),
  tenantId: values.tenant,
  caFile: values['ca-file'],
  tokenLifetimeSeconds: values['token-lifetime'] ? Number(values['token-lifetime']) : undefined,
});
const config: ConfigFile = values.config ? (JSON.parse(readFileSync(values.config, 'utf8')) as ConfigFile) : {};
const apps = (config.apps ?? []).map((app) => authority.registerApp({ ...app, certificates: app.certificates?.map(readPem) }));

process.stdout.write(
  JSON.stringify({
    url: authority.url,
    host: authority.host,
    tenantId: authority.tenantId,
    caFile: authority.caFile,
    apps,
    serviceAccountIssuer: serviceAccountIssuer ? { issuer: serviceAccountIssuer.issuer, jwksUri: serviceAccountIssuer.jwksUri } : undefined,
  }) + '\n',
);

const stop = (): void => {
  void Promise.all([authority.stop(), serviceAccountIssuer?.stop()]).then(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
