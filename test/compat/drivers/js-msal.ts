/**
 * @azure/msal-node driver: ManagedIdentityApplication (system-assigned, userAssignedClientId,
 * userAssignedResourceId, userAssignedObjectId). Protocol: ./protocol.ts.
 */
import type * as MsalModule from '@azure/msal-node';
import type { ManagedIdentityIdParams } from '@azure/msal-node';
import { loadPackage } from './load-package.ts';
import { driverMain, runTwoCalls } from './run-driver.ts';
import type { DriverInput, Variant } from './protocol.ts';

type Msal = typeof MsalModule;

function idParams(variant: Variant): ManagedIdentityIdParams | undefined {
  const sel = variant.selector;
  if (sel === undefined) return undefined;
  switch (sel.kind) {
    case 'client-id':
      return { userAssignedClientId: sel.value };
    case 'resource-id':
      return { userAssignedResourceId: sel.value };
    case 'object-id':
      return { userAssignedObjectId: sel.value };
  }
}

async function runVariant(input: DriverInput, variant: Variant) {
  const params = idParams(variant);
  const { module: msal, versions } = await loadPackage<Msal>('@azure/msal-node', input.jsPackageDir);
  return runTwoCalls(
    input,
    variant,
    versions,
    () => new msal.ManagedIdentityApplication(params === undefined ? {} : { managedIdentityIdParams: params }),
    async (app) => {
      const r = await app.acquireToken({ resource: input.resource });
      if (r.expiresOn === null) throw new Error('msal-node returned no expiresOn');
      return { token: r.accessToken, expiresOnS: r.expiresOn.getTime() / 1000 };
    },
  );
}

await driverMain(runVariant);
