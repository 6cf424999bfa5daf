/**
 * The benchmarks' Entra side, in its own process (forked with IPC) so its work — TLS, RS256 signing, assertion
 * checks — never runs on the load generator's event loop:
 *
 * - the project's test authority (test/authority/authority.ts) with one app registration trusting a local
 *   service-account issuer through a federated credential, as a workload-identity cluster would;
 * - the service-account token file and a mounted-Secret style identity directory for the sidecar;
 * - a loopback CONNECT proxy for the peer. MSAL Go (inside `azwi proxy`) validates any authority host it does not
 *   know by calling instance discovery on login.microsoftonline.com, which is not reachable here. With
 *   HTTPS_PROXY pointing at this proxy, that one host is answered on loopback: the proxy terminates TLS with a
 *   certificate for login.microsoftonline.com from a benchmark-only CA (trusted by the peer through SSL_CERT_FILE)
 *   and forwards the request to the test authority's own instance-discovery endpoint, which names the test
 *   authority as the tenant's discovery endpoint. CONNECT to any other host is refused: nothing leaves the machine.
 * - a loopback HTTPS front for the peer's authority host. MSAL Go sends client-credential requests with
 *   `scope=<resource>/.default openid offline_access profile`; Entra ignores the three reserved OIDC scopes there,
 *   the test authority (stricter than Entra) rejects them with AADSTS1002012. The front drops exactly those three
 *   scopes from token requests and points discovery documents at itself; everything else passes unchanged. The
 *   peer pays one extra loopback hop per upstream call for it (reported in docs/performance.md).
 *
 * Protocol: the parent receives one `{ type: 'ready', info }` message, then sends `{ id, op, ... }` requests
 * (`calls`, `setFault`, `resetCalls`, `stop`) and gets `{ id, result }` answers.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestAuthority, type EndpointKind, type FaultSpec } from '../../test/authority/authority.ts';
import { createTestCertificateAuthority, issueServerCertificate } from '../../test/authority/pki.ts';
import { startServiceAccountIssuer } from '../../test/authority/service-account-issuer.ts';

export const SERVICE_ACCOUNT_SUBJECT = 'system:serviceaccount:bench:app';
/** The only host the discovery proxy answers (MSAL Go's instance-discovery host for unknown authorities). */
export const DISCOVERY_HOST = 'login.microsoftonline.com';

export interface AuthorityHostInfo {
  readonly url: string;
  readonly tenantId: string;
  readonly clientId: string;
  /** CA of the test authority alone (NODE_EXTRA_CA_CERTS for the sidecar). */
  readonly caFile: string;
  /** Test authority CA + discovery-proxy CA (SSL_CERT_FILE for the peer). */
  readonly caBundleFile: string;
  readonly tokenFile: string;
  /** Directory with one identity subdirectory `bench` (tenantId, clientId: federated). */
  readonly identityDir: string;
  readonly discoveryProxyUrl: string;
  /** The HTTPS front of the test authority that the peer uses as AZURE_AUTHORITY_HOST. */
  readonly peerAuthorityUrl: string;
}

/** OIDC scopes MSAL adds to every request and Entra ignores on the client-credentials grant. */
const RESERVED_SCOPES = new Set(['openid', 'offline_access', 'profile']);

/** Token request body with the reserved OIDC scopes removed; other bodies unchanged. */
export function stripReservedScopes(path: string, body: string): string {
  if (!/\/oauth2\/v2\.0\/token$/.test(path.split('?')[0] ?? '')) return body;
  const form = new URLSearchParams(body);
  const scope = form.get('scope');
  if (scope === null) return body;
  form.set('scope', scope.split(' ').filter((s) => s !== '' && !RESERVED_SCOPES.has(s)).join(' '));
  return form.toString();
}

export type AuthorityRequest =
  | { readonly id: number; readonly op: 'calls'; readonly endpoint?: EndpointKind; readonly scope?: string }
  | { readonly id: number; readonly op: 'setFault'; readonly fault: FaultSpec | undefined }
  | { readonly id: number; readonly op: 'resetCalls' }
  | { readonly id: number; readonly op: 'stop' };

async function main(): Promise<void> {
  const authority = await startTestAuthority({ tokenLifetimeSeconds: 24 * 3600 });
  const serviceAccounts = await startServiceAccountIssuer();
  const app = authority.registerApp({
    displayName: 'mi-anywhere bench',
    federatedCredentials: [{ issuer: serviceAccounts.issuer, subject: SERVICE_ACCOUNT_SUBJECT, jwksUri: serviceAccounts.jwksUri }],
  });
  const dir = mkdtempSync(join(tmpdir(), 'mi-anywhere-bench-authority-'));
  const tokenFile = join(dir, 'sa-token');
  writeFileSync(tokenFile, await serviceAccounts.mint({ subject: SERVICE_ACCOUNT_SUBJECT, lifetimeSeconds: 24 * 3600 }));
  const identityDir = join(dir, 'identities');
  mkdirSync(join(identityDir, 'bench'), { recursive: true });
  writeFileSync(join(identityDir, 'bench', 'tenantId'), app.tenantId);
  writeFileSync(join(identityDir, 'bench', 'clientId'), app.clientId);

  const proxyCa = await createTestCertificateAuthority('mi-anywhere bench discovery proxy CA');
  const proxyCert = await issueServerCertificate(proxyCa, [DISCOVERY_HOST]);
  const caBundleFile = join(dir, 'ca-bundle.pem');
  writeFileSync(caBundleFile, `${authority.caPem.trim()}\n${proxyCa.certPem.trim()}\n`);
  const target = new URL(authority.url);

  let frontUrl = '';
  const forward = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.from(stripReservedScopes(req.url ?? '/', Buffer.concat(chunks).toString('utf8')));
      const headers: Record<string, string | string[] | undefined> = { ...req.headers, host: target.host, 'content-length': String(body.length) };
      if (req.method === 'GET' || req.method === 'HEAD') delete headers['content-length'];
      const upstream = httpsRequest(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers, ca: authority.caPem },
        (answer) => {
          const parts: Buffer[] = [];
          answer.on('data', (chunk: Buffer) => parts.push(chunk));
          answer.on('end', () => {
            // Discovery documents name the authority's own URL; the peer must keep talking to the front.
            const text = Buffer.from(Buffer.concat(parts).toString('utf8').replaceAll(authority.url, frontUrl));
            const out: Record<string, string | string[] | undefined> = { ...answer.headers, 'content-length': String(text.length) };
            delete out['transfer-encoding'];
            res.writeHead(answer.statusCode ?? 502, out);
            res.end(text);
          });
        },
      );
      upstream.on('error', () => res.writeHead(502).end());
      upstream.end(body);
    });
  };
  const frontCert = await issueServerCertificate(proxyCa, ['127.0.0.1', 'localhost']);
  const front = createHttpsServer({ key: frontCert.keyPem, cert: frontCert.certPem, keepAliveTimeout: 65_000 }, forward);
  await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
  frontUrl = `https://127.0.0.1:${(front.address() as AddressInfo).port}`;
  const tlsTerminator = createHttpsServer({ key: proxyCert.keyPem, cert: proxyCert.certPem }, forward);
  const proxy = createHttpServer((_req, res) => res.writeHead(405).end());
  proxy.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    if (req.url !== `${DISCOVERY_HOST}:443`) {
      socket.end('HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length > 0) socket.unshift(head);
    tlsTerminator.emit('connection', socket);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));

  const info: AuthorityHostInfo = {
    url: authority.url,
    tenantId: app.tenantId,
    clientId: app.clientId,
    caFile: authority.caFile,
    caBundleFile,
    tokenFile,
    identityDir,
    discoveryProxyUrl: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
    peerAuthorityUrl: frontUrl,
  };

  const stop = async (): Promise<void> => {
    proxy.close();
    tlsTerminator.close();
    front.close();
    front.closeAllConnections();
    await serviceAccounts.stop();
    await authority.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  process.on('message', (message: AuthorityRequest) => {
    const reply = (result: unknown): void => {
      process.send?.({ id: message.id, result });
    };
    switch (message.op) {
      case 'calls':
        reply(
          authority.calls({
            ...(message.endpoint ? { endpoint: message.endpoint } : {}),
            ...(message.scope ? { scope: message.scope } : {}),
          }).length,
        );
        break;
      case 'setFault':
        authority.setFault(message.fault);
        reply(true);
        break;
      case 'resetCalls':
        authority.resetCalls();
        reply(true);
        break;
      case 'stop':
        void stop().then(() => {
          reply(true);
          process.exit(0);
        });
        break;
    }
  });
  // The parent going away (crash, SIGKILL) closes the IPC channel: never outlive it.
  process.on('disconnect', () => void stop().then(() => process.exit(0)));
  process.send?.({ type: 'ready', info });
}

await main();
