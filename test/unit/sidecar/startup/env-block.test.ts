import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ENV_BLOCK_END, formatEnvBlock } from '../../../../sidecar/startup/env-block.ts';
import { parseEnvBlock } from '../../../helpers/sidecar.ts';

describe('formatEnvBlock', () => {
  const input = { mode: 'dev' as const, baseUrl: 'http://127.0.0.1:50342', secretText: 's3cr3t', defaultClientId: 'cid', arcEnabled: false };
  it('prints one block per profile, default first, and the end marker', () => {
    const text = formatEnvBlock(input);
    assert.match(text.split('\n')[0] ?? '', /^# mi-anywhere \(dev mode: .*\) is serving/);
    assert.ok(text.endsWith(`${ENV_BLOCK_END}\n`));
    const profiles = parseEnvBlock(text);
    assert.deepEqual([...profiles.keys()], ['default', 'app-service', 'msi-endpoint', 'msi-secret', 'pod-identity']);
    assert.deepEqual(profiles.get('default'), {
      IDENTITY_ENDPOINT: 'http://127.0.0.1:50342/msi/token',
      IDENTITY_HEADER: 's3cr3t',
      MSI_ENDPOINT: 'http://127.0.0.1:50342/oauth2/token',
      MSI_SECRET: 's3cr3t',
      DEFAULT_IDENTITY_CLIENT_ID: 'cid',
      AZURE_POD_IDENTITY_AUTHORITY_HOST: 'http://127.0.0.1:50342',
    });
  });
  it('adds the arc profile only when Arc is enabled, and no dev banner in entra mode', () => {
    const text = formatEnvBlock({ ...input, mode: 'entra', arcEnabled: true, secretText: '$MI_ANYWHERE_IDENTITY_HEADER' });
    const profiles = parseEnvBlock(text);
    assert.deepEqual(profiles.get('arc'), { IDENTITY_ENDPOINT: 'http://127.0.0.1:50342/arc/metadata/identity/oauth2/token', IMDS_ENDPOINT: 'http://127.0.0.1:50342' });
    assert.equal(profiles.get('app-service')?.['IDENTITY_HEADER'], '$MI_ANYWHERE_IDENTITY_HEADER');
    assert.ok(!text.includes('dev mode'));
  });
  it('entra mode prints a generated secret exactly once, on the line the profiles\' references resolve to', () => {
    const secret = 'generated-secret-0123456789abcdef';
    const text = formatEnvBlock({ ...input, mode: 'entra', arcEnabled: true, secretText: '$MI_ANYWHERE_IDENTITY_HEADER', generatedSecret: secret });
    assert.equal(text.split(secret).length - 1, 1, text);
    assert.ok(text.split('\n').includes(`MI_ANYWHERE_IDENTITY_HEADER=${secret}`));
    const profiles = parseEnvBlock(text);
    assert.equal(profiles.get('app-service')?.['IDENTITY_HEADER'], '$MI_ANYWHERE_IDENTITY_HEADER');
    assert.equal(profiles.get('default')?.['MSI_SECRET'], '$MI_ANYWHERE_IDENTITY_HEADER');
  });
});
