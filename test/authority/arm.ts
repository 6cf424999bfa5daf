/**
 * A small Azure Resource Manager stand-in: just what the Azure CLI needs to register the test authority as a
 * custom cloud and to log in against it.
 *
 * - `GET /metadata/endpoints?api-version=…`: the cloud's endpoints (`az cloud register --endpoint-resource-manager`
 *   reads them, as from https://management.azure.com/metadata/endpoints?api-version=2022-09-01): login endpoint =
 *   the test authority, resource manager = this server, audience = {@link ARM_AUDIENCE}.
 * - `GET /subscriptions?api-version=…` and `GET /tenants?api-version=…`: one subscription and the authority's tenant
 *   (what `az login` lists after its token request), only with a bearer token the test authority issued for
 *   {@link ARM_AUDIENCE} (signature checked against the authority's JWKS; else 401 as ARM answers).
 *
 * HTTPS on 127.0.0.1 with its own throw-away CA (`caPem`): the Azure SDKs refuse bearer tokens over plain HTTP.
 */
import { createServer, type Server } from 'node:https';
import { request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { createTestCertificateAuthority, issueServerCertificate } from './pki.ts';
import type { TestAuthority } from './authority.ts';

/** The resource az asks tokens for when talking to ARM (`activeDirectoryResourceId` of the public cloud). */
export const ARM_AUDIENCE = 'https://management.core.windows.net/';

export interface ArmStandIn {
  /** e.g. `https://127.0.0.1:41234/` (trailing slash, as az stores it). */
  readonly url: string;
  readonly caPem: string;
  readonly subscriptionId: string;
  /** Requests with their outcome (path without query, status). */
  calls(): ReadonlyArray<{ readonly path: string; readonly status: number }>;
  stop(): Promise<void>;
}

function getJson(url: string, ca: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => {
        try {
          resolve(JSON.parse(body));
        } catch (error) {
          reject(error instanceof Error ? error : new Error(String(error)));
        }
      });
    });
    req.on('error', reject);
    req.end();
  });
}

export async function startArmStandIn(authority: TestAuthority): Promise<ArmStandIn> {
  const ca = await createTestCertificateAuthority('mi-anywhere ARM stand-in CA');
  const cert = await issueServerCertificate(ca);
  const subscriptionId = randomUUID();
  const log: Array<{ path: string; status: number }> = [];
  let base = '';

  const authorized = async (header: string | undefined): Promise<boolean> => {
    const token = header?.replace(/^Bearer /, '');
    if (!token) return false;
    try {
      const jwks = (await getJson(`${authority.url}/${authority.tenantId}/discovery/v2.0/keys`, authority.caPem)) as JSONWebKeySet;
      const { payload } = await jwtVerify(token, createLocalJWKSet(jwks));
      const aud = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
      return aud.some((a) => a !== undefined && a.replace(/\/+$/, '') === ARM_AUDIENCE.replace(/\/+$/, ''));
    } catch {
      return false;
    }
  };

  const server: Server = createServer({ key: cert.keyPem, cert: cert.certPem }, (req, res) => {
    // az joins its base URL (with a trailing slash) and the path, so `//metadata/...` arrives: not a URL authority.
    const path = (req.url ?? '/').split('?')[0]!.replace(/^\/+/, '/');
    const answer = (status: number, body: unknown): void => {
      log.push({ path, status });
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
      res.end(JSON.stringify(body));
    };
    req.resume();
    if (path === '/metadata/endpoints') {
      return answer(200, {
        name: 'MiAnywhereTest',
        resourceManager: base,
        portal: base,
        gallery: base,
        graph: 'https://graph.windows.net/',
        graphAudience: 'https://graph.windows.net/',
        microsoftGraphResourceId: 'https://graph.microsoft.com/',
        authentication: { loginEndpoint: authority.url, audiences: [ARM_AUDIENCE, base], tenant: 'common', identityProvider: 'AAD' },
        suffixes: { storage: 'core.windows.net', keyVaultDns: 'vault.azure.net', sqlServerHostname: 'database.windows.net' },
      });
    }
    if (path === '/subscriptions' || path === '/tenants') {
      void authorized(req.headers.authorization).then((ok) => {
        if (!ok) {
          res.setHeader('www-authenticate', `Bearer authorization_uri="${authority.url}/${authority.tenantId}", error="invalid_token"`);
          return answer(401, { error: { code: 'InvalidAuthenticationToken', message: 'The access token is invalid.' } });
        }
        if (path === '/tenants') {
          return answer(200, { value: [{ id: `/tenants/${authority.tenantId}`, tenantId: authority.tenantId, tenantCategory: 'Home', displayName: 'mi-anywhere test tenant' }] });
        }
        return answer(200, {
          value: [
            {
              id: `/subscriptions/${subscriptionId}`,
              subscriptionId,
              tenantId: authority.tenantId,
              displayName: 'mi-anywhere test subscription',
              state: 'Enabled',
              subscriptionPolicies: { locationPlacementId: 'Public_2014-09-01', quotaId: 'PayAsYouGo_2014-09-01', spendingLimit: 'Off' },
              authorizationSource: 'RoleBased',
            },
          ],
        });
      });
      return;
    }
    answer(404, { error: { code: 'NotFound', message: `The stand-in does not serve ${path}` } });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `https://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  return {
    url: base,
    caPem: ca.certPem,
    subscriptionId,
    calls: () => [...log],
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
