/**
 * Sample app for the compose example: an ordinary Azure SDK program with no knowledge of mi-anywhere. It asks
 * `DefaultAzureCredential` for a token (which finds IDENTITY_ENDPOINT/IDENTITY_HEADER and uses the managed
 * identity source, as it would on App Service) and prints the token's claims (never the token itself).
 *
 * Run: `node main.ts` (Node 24 runs TypeScript directly). Environment: the SDK variables from compose.yaml, and
 * TOKEN_SCOPE (default https://management.azure.com/.default).
 */
import { DefaultAzureCredential } from '@azure/identity';

const scope = process.env['TOKEN_SCOPE'] ?? 'https://management.azure.com/.default';

/** The claims worth showing: who the token is for and from, and until when. */
const SHOWN_CLAIMS = ['aud', 'iss', 'tid', 'oid', 'appid', 'azp', 'idtyp', 'iat', 'exp'] as const;

function claimsOf(jwt: string): Record<string, unknown> {
  const payload = jwt.split('.')[1] ?? '';
  const all = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
  return Object.fromEntries(SHOWN_CLAIMS.filter((claim) => claim in all).map((claim) => [claim, all[claim]]));
}

try {
  const token = await new DefaultAzureCredential().getToken(scope);
  process.stdout.write(
    `${JSON.stringify({ scope, expiresOn: new Date(token.expiresOnTimestamp).toISOString(), claims: claimsOf(token.token) })}\n`,
  );
} catch (error) {
  process.stderr.write(`no token for ${scope}: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
}
