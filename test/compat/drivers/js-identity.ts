/**
 * @azure/identity driver: DefaultAzureCredential and ManagedIdentityCredential (system-assigned, clientId,
 * resourceId, objectId). Protocol: ./protocol.ts.
 */
import type * as IdentityModule from '@azure/identity';
import type { TokenCredential } from '@azure/identity';
import { loadPackage } from './load-package.ts';
import { driverMain, runTwoCalls } from './run-driver.ts';
import { scopeOf, type DriverInput, type Variant } from './protocol.ts';

type Identity = typeof IdentityModule;

function make(identity: Identity, variant: Variant): TokenCredential {
  const { DefaultAzureCredential, ManagedIdentityCredential } = identity;
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
  const { module: identity, versions } = await loadPackage<Identity>('@azure/identity', input.jsPackageDir);
  return runTwoCalls(input, variant, versions, () => make(identity, variant), async (cred) => {
    const t = await cred.getToken(scope, { abortSignal: AbortSignal.timeout(input.callTimeoutMs) });
    if (t === null) throw new Error('getToken returned null');
    return { token: t.token, expiresOnS: t.expiresOnTimestamp / 1000 };
  });
}

await driverMain(runVariant);
