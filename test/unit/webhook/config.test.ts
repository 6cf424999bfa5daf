import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { WEBHOOK_ENV, loadConfig } from '../../../webhook/config.ts';
import { ConfigError } from '../../../webhook/errors.ts';

const BASE = { MI_ANYWHERE_WEBHOOK_SIDECAR_IMAGE: 'img:1' };
const SELF = {
  ...BASE,
  MI_ANYWHERE_WEBHOOK_CERT_MODE: 'self-managed',
  MI_ANYWHERE_WEBHOOK_NAMESPACE: 'mi',
  MI_ANYWHERE_WEBHOOK_SERVICE_NAME: 'svc',
  MI_ANYWHERE_WEBHOOK_CERT_SECRET_NAME: 'tls',
  MI_ANYWHERE_WEBHOOK_CONFIGURATION_NAME: 'mwc',
};

function problems(env: Record<string, string>): readonly string[] {
  try {
    loadConfig(env);
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return error.problems;
  }
  return [];
}

describe('webhook config', () => {
  it('defaults', () => {
    const config = loadConfig(BASE);
    assert.deepEqual(config.webhook, { address: '0.0.0.0', port: 8443 });
    assert.deepEqual(config.health, { address: '0.0.0.0', port: 8081 });
    assert.deepEqual(config.metrics, { address: '0.0.0.0', port: 8080 });
    assert.equal(config.tlsMinVersion, 'TLSv1.3');
    assert.equal(config.nativeSidecar, 'auto');
    assert.deepEqual(config.cert, { mode: 'files', certFile: '/etc/mi-anywhere/tls/tls.crt', keyFile: '/etc/mi-anywhere/tls/tls.key', reloadIntervalSeconds: 10 });
    assert.deepEqual(config.sidecar.command, ['node']);
    assert.deepEqual(config.sidecar.args, ['dist/sidecar/main.js']);
    assert.deepEqual(config.sidecar.resources, { cpuRequest: '10m', cpuLimit: '500m', memoryRequest: '96Mi', memoryLimit: '256Mi' });
    assert.equal(config.sidecar.defaultProfile, 'default');
    assert.equal(config.sidecar.imdsRedirectImage, undefined);
    assert.equal(config.sidecar.probeAddress, '0.0.0.0');
    assert.equal(loadConfig({ ...BASE, MI_ANYWHERE_WEBHOOK_SIDECAR_PROBE_ADDRESS: '::' }).sidecar.probeAddress, '::');
    assert.ok(Object.isFrozen(config) && Object.isFrozen(config.sidecar.resources) && Object.isFrozen(config.sidecar.args));
  });

  it('self-managed mode', () => {
    const config = loadConfig({ ...SELF, MI_ANYWHERE_WEBHOOK_CERT_IP_ADDRESSES: '127.0.0.1, ::1', MI_ANYWHERE_WEBHOOK_CERT_EXTRA_DNS_NAMES: 'a.example' });
    assert.equal(config.cert.mode, 'self-managed');
    if (config.cert.mode !== 'self-managed') return;
    assert.deepEqual(config.cert.ipAddresses, ['127.0.0.1', '::1']);
    assert.deepEqual(config.cert.extraDnsNames, ['a.example']);
    assert.equal(config.cert.certValidityDays, 365);
    assert.equal(config.cert.checkIntervalSeconds, 300);
  });

  const invalid: Array<{ name: string; env: Record<string, string>; want: RegExp[] }> = [
    { name: 'image required', env: {}, want: [/SIDECAR_IMAGE is required/] },
    { name: 'port not a number', env: { ...BASE, MI_ANYWHERE_WEBHOOK_PORT: 'https' }, want: [/MI_ANYWHERE_WEBHOOK_PORT: must be a number: a plain decimal integer \(got "https"\)/] },
    { name: 'port out of range', env: { ...BASE, MI_ANYWHERE_WEBHOOK_HEALTH_PORT: '70000' }, want: [/HEALTH_PORT/] },
    { name: 'same ports', env: { ...BASE, MI_ANYWHERE_WEBHOOK_METRICS_PORT: '8443' }, want: [/ports must differ/] },
    { name: 'tls version', env: { ...BASE, MI_ANYWHERE_WEBHOOK_TLS_MIN_VERSION: 'TLSv1.1' }, want: [/TLSv1.2, TLSv1.3/] },
    { name: 'native mode', env: { ...BASE, MI_ANYWHERE_WEBHOOK_NATIVE_SIDECAR: 'yes' }, want: [/auto, always, never/] },
    { name: 'command not JSON', env: { ...BASE, MI_ANYWHERE_WEBHOOK_SIDECAR_COMMAND: 'node' }, want: [/JSON array of strings/] },
    { name: 'command empty', env: { ...BASE, MI_ANYWHERE_WEBHOOK_SIDECAR_COMMAND: '[]' }, want: [/must name the program/] },
    { name: 'bad quantity', env: { ...BASE, MI_ANYWHERE_WEBHOOK_SIDECAR_MEMORY_REQUEST: '64 MB' }, want: [/not a positive Kubernetes memory quantity/] },
    { name: 'request above limit', env: { ...BASE, MI_ANYWHERE_WEBHOOK_SIDECAR_MEMORY_REQUEST: '1Gi' }, want: [/memory request 1Gi exceeds its limit 256Mi/] },
    { name: 'empty request', env: { ...BASE, MI_ANYWHERE_WEBHOOK_SIDECAR_CPU_REQUEST: '' }, want: [/must not be empty/] },
    { name: 'root user', env: { ...BASE, MI_ANYWHERE_WEBHOOK_SIDECAR_RUN_AS_USER: '0' }, want: [/RUN_AS_USER/] },
    { name: 'profile', env: { ...BASE, MI_ANYWHERE_WEBHOOK_DEFAULT_PROFILE: 'imds' }, want: [/DEFAULT_PROFILE/] },
    { name: 'federated expiry', env: { ...BASE, MI_ANYWHERE_WEBHOOK_DEFAULT_FEDERATED_EXPIRATION_SECONDS: '60' }, want: [/between 600 and 4294967296 \(got 60\)/] },
    { name: 'authority URL', env: { ...BASE, MI_ANYWHERE_WEBHOOK_SIDECAR_AUTHORITY_HOST: 'login.example' }, want: [/must be an http\(s\) URL/] },
    { name: 'probe address', env: { ...BASE, MI_ANYWHERE_WEBHOOK_SIDECAR_PROBE_ADDRESS: '10.0.0.1' }, want: [/SIDECAR_PROBE_ADDRESS: must be one of 0.0.0.0, :: \(got "10.0.0.1"\)/] },
    { name: 'sidecar ports', env: { ...BASE, MI_ANYWHERE_WEBHOOK_SIDECAR_HEALTH_PORT: '50342' }, want: [/sidecar token, health and metrics ports must differ/] },
    {
      name: 'self-managed needs names',
      env: { ...BASE, MI_ANYWHERE_WEBHOOK_CERT_MODE: 'self-managed' },
      want: [/NAMESPACE is required/, /SERVICE_NAME is required/, /CERT_SECRET_NAME is required/, /CONFIGURATION_NAME is required/],
    },
    { name: 'renew before validity', env: { ...SELF, MI_ANYWHERE_WEBHOOK_CERT_RENEW_BEFORE_DAYS: '400' }, want: [/smaller than CERT_VALIDITY_DAYS/] },
    { name: 'bad IP SAN', env: { ...SELF, MI_ANYWHERE_WEBHOOK_CERT_IP_ADDRESSES: 'localhost' }, want: [/not an IP address/] },
    { name: 'hexadecimal port', env: { ...BASE, MI_ANYWHERE_WEBHOOK_PORT: '0x0' }, want: [/MI_ANYWHERE_WEBHOOK_PORT: must be a number: a plain decimal integer \(got "0x0"\)/] },
    { name: 'exponent', env: { ...BASE, MI_ANYWHERE_WEBHOOK_TLS_RELOAD_INTERVAL_SECONDS: '1e3' }, want: [/RELOAD_INTERVAL_SECONDS: must be a number/] },
    { name: 'leading space', env: { ...BASE, MI_ANYWHERE_WEBHOOK_HEALTH_PORT: ' 80' }, want: [/HEALTH_PORT: must be a number: a plain decimal integer \(got " 80"\)/] },
    { name: 'misspelt setting', env: { ...BASE, MI_ANYWHERE_WEBHOOK_SIDECAR_MEMORY_LIMT: '1Gi' }, want: [/MI_ANYWHERE_WEBHOOK_SIDECAR_MEMORY_LIMT: unknown setting; did you mean MI_ANYWHERE_WEBHOOK_SIDECAR_MEMORY_LIMIT\?/] },
    { name: 'unknown setting', env: { ...BASE, MI_ANYWHERE_WEBHOOK_COLOUR: 'blue' }, want: [/MI_ANYWHERE_WEBHOOK_COLOUR: unknown setting \(the settings are listed in docs\/webhook.md\)/] },
    { name: 'all problems at once', env: { MI_ANYWHERE_WEBHOOK_PORT: 'x', MI_ANYWHERE_WEBHOOK_LOG_LEVEL: 'loud' }, want: [/PORT/, /LOG_LEVEL/, /SIDECAR_IMAGE/] },
  ];
  for (const tc of invalid) {
    it(`refuses: ${tc.name}`, () => {
      const found = problems(tc.env);
      assert.ok(found.length > 0, 'expected a ConfigError');
      for (const want of tc.want) assert.ok(found.some((p) => want.test(p)), `${want} not in ${JSON.stringify(found)}`);
    });
  }

  it('all problems at once: unknown names, non-decimal numbers and missing settings in one error', () => {
    const found = problems({ MI_ANYWHERE_WEBHOOK_PROT: '8443', MI_ANYWHERE_WEBHOOK_METRICS_PORT: '+80', MI_ANYWHERE_WEBHOOK_LOG_LEVEL: 'loud' });
    assert.deepEqual(found, [
      'MI_ANYWHERE_WEBHOOK_PROT: unknown setting; did you mean MI_ANYWHERE_WEBHOOK_PORT?',
      'MI_ANYWHERE_WEBHOOK_LOG_LEVEL: must be one of fatal, error, warn, info, debug, trace, silent (got "loud")',
      'MI_ANYWHERE_WEBHOOK_METRICS_PORT: must be a number: a plain decimal integer (got "+80")',
      'MI_ANYWHERE_WEBHOOK_SIDECAR_IMAGE is required (the image of the injected sidecar; the chart passes its own image)',
    ]);
  });

  it('tolerates the service links Kubernetes adds for a Service named mi-anywhere-webhook, and other programs\' names', () => {
    const config = loadConfig({
      ...BASE,
      MI_ANYWHERE_WEBHOOK_SERVICE_HOST: '10.96.0.12',
      MI_ANYWHERE_WEBHOOK_SERVICE_PORT: '443',
      MI_ANYWHERE_WEBHOOK_SERVICE_PORT_HTTPS: '443',
      MI_ANYWHERE_WEBHOOK_PORT_443_TCP: 'tcp://10.96.0.12:443',
      MI_ANYWHERE_WEBHOOK_PORT_443_TCP_PROTO: 'tcp',
      MI_ANYWHERE_WEBHOOK_PORT_443_TCP_PORT: '443',
      MI_ANYWHERE_WEBHOOK_PORT_443_TCP_ADDR: '10.96.0.12',
      MI_ANYWHERE_LOG_LEVEL: 'debug',
      PATH: '/usr/bin',
    });
    assert.equal(config.webhook.port, 8443);
  });

  it('every variable is listed in the header comment and in docs/webhook.md', () => {
    const header = readFileSync(join(import.meta.dirname, '..', '..', '..', 'webhook', 'config.ts'), 'utf8').split('*/')[0] ?? '';
    const docs = readFileSync(join(import.meta.dirname, '..', '..', '..', 'docs', 'webhook.md'), 'utf8');
    for (const name of Object.values(WEBHOOK_ENV)) {
      assert.ok(header.includes(` ${name} `), `${name} missing from the config.ts header`);
      assert.ok(docs.includes(name), `${name} missing from docs/webhook.md`);
    }
  });
});
