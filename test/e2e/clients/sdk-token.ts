/**
 * A real SDK client for end-to-end tests: gets one token with @azure/identity from whatever managed-identity
 * environment it was started with (the sidecar's printed profile), and prints one JSON line:
 * `{"ok":true,"token":"…","expiresOnTimestamp":…}` or `{"ok":false,"name":"…","message":"…"}`.
 *
 * Usage: node sdk-token.ts <scope> [managed|default] [clientId]
 */
import { DefaultAzureCredential, ManagedIdentityCredential, type TokenCredential } from '@azure/identity';

const [scope = 'https://management.azure.com/.default', kind = 'managed', clientId] = process.argv.slice(2);
const credential: TokenCredential =
  kind === 'default'
    ? new DefaultAzureCredential(clientId ? { managedIdentityClientId: clientId } : {})
    : new ManagedIdentityCredential(clientId ? { clientId } : {});
try {
  const token = await credential.getToken(scope, { abortSignal: AbortSignal.timeout(60_000) });
  process.stdout.write(`${JSON.stringify({ ok: true, token: token?.token, expiresOnTimestamp: token?.expiresOnTimestamp })}\n`);
} catch (error) {
  const e = error as Error;
  process.stdout.write(`${JSON.stringify({ ok: false, name: e.name, message: e.message })}\n`);
}
