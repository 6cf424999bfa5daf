/**
 * @azure/identity driver: DefaultAzureCredential and ManagedIdentityCredential (system-assigned, clientId,
 * resourceId, objectId). Protocol: ./protocol.ts.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DefaultAzureCredential, ManagedIdentityCredential, type TokenCredential } from '@azure/identity';
import { driverMain, runTwoCalls } from './run-driver.ts';
import { scopeOf, type DriverInput, type Variant } from './protocol.ts';

const root = join(import.meta.dirname, '..', '..', '..');
function pkgVersion(name: string): string {
  const pkg = JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}
const versions = {
  '@azure/identity': pkgVersion('@azure/identity'),
  '@azure/msal-node': pkgVersion('@azure/msal-node'),
  node: process.versions.node,
};

function make(variant: Variant): TokenCredential {
  if (variant.credential === 'default') return new DefaultAzureCredential();
  const sel = variant.selector;
  if (sel === undefined) return new ManagedIdentityCredential();
  switch (sel.kind) {
    case 'client-id':
      return new ManagedIdentityCredential({ clientId: sel.value });
    case 'resource-id':
      return new ManagedIdentityCredential({ resourceId: sel.value });
    case 'object-id':
      return new ManagedIdentityCredential({ objectId: sel.value });
  }
}

async function runVariant(input: DriverInput, variant: Variant) {
  const scope = scopeOf(input.resource);
  return runTwoCalls(input, variant, versions, () => make(variant), async (cred) => {
    const t = await cred.getToken(scope, { abortSignal: AbortSignal.timeout(input.callTimeoutMs) });
    if (t === null) throw new Error('getToken returned null');
    return { token: t.token, expiresOnS: t.expiresOnTimestamp / 1000 };
  });
}

await driverMain(runVariant);
