/**
 * @azure/msal-node driver: ManagedIdentityApplication (system-assigned, userAssignedClientId,
 * userAssignedResourceId, userAssignedObjectId). Protocol: ./protocol.ts.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ManagedIdentityApplication, type ManagedIdentityIdParams } from '@azure/msal-node';
import { driverMain, runTwoCalls } from './run-driver.ts';
import type { DriverInput, Variant } from './protocol.ts';

const root = join(import.meta.dirname, '..', '..', '..');
const pkg = JSON.parse(readFileSync(join(root, 'node_modules', '@azure/msal-node', 'package.json'), 'utf8')) as {
  version: string;
};
const versions = { '@azure/msal-node': pkg.version, node: process.versions.node };

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
  return runTwoCalls(
    input,
    variant,
    versions,
    () => new ManagedIdentityApplication(params === undefined ? {} : { managedIdentityIdParams: params }),
    async (app) => {
      const r = await app.acquireToken({ resource: input.resource });
      if (r.expiresOn === null) throw new Error('msal-node returned no expiresOn');
      return { token: r.accessToken, expiresOnS: r.expiresOn.getTime() / 1000 };
    },
  );
}

await driverMain(runVariant);
