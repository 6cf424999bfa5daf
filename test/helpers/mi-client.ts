/**
 * A minimal app written against @azure/identity, run as a child process by a test (test/integration/sidecar/readme.test.ts, test/integration/entra/sidecar-entra.test.ts) with an environment that
 * holds only one profile's variables. Calls ManagedIdentityCredential.getToken twice and prints one JSON line:
 * the access token, its expiry, and whether the second call returned the same token (served from the SDK cache).
 *
 * Usage: node mi-client.ts <scope> [clientId]
 */
import { ManagedIdentityCredential } from '@azure/identity';

const [scope, clientId] = process.argv.slice(2);
if (scope === undefined) throw new Error('usage: mi-client.ts <scope> [clientId]');
const credential = clientId ? new ManagedIdentityCredential({ clientId }) : new ManagedIdentityCredential();
try {
  const first = await credential.getToken(scope);
  const second = await credential.getToken(scope);
  process.stdout.write(
    JSON.stringify({ ok: true, token: first.token, expiresOnTimestamp: first.expiresOnTimestamp, sameToken: first.token === second.token }) + '\n',
  );
} catch (error) {
  process.stdout.write(JSON.stringify({ ok: false, error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) }) + '\n');
  process.exitCode = 1;
}
