/**
 * A fake Kubernetes service-account token issuer for tests: it publishes OIDC discovery and a JWKS exactly where
 * kube-apiserver does (`/.well-known/openid-configuration`, `/openid/v1/jwks`) and mints projected tokens
 * shaped like kubelet's (`sub: system:serviceaccount:<ns>:<name>`, `aud: [<audience>]`). The test authority
 * trusts it through a registered federated credential, the same way Entra trusts a cluster's OIDC issuer.
 *
 * Plain HTTP on 127.0.0.1: the test authority (the only client) fetches the JWKS itself.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, generateKeyPair, type JWK } from 'jose';
import { randomUUID } from 'node:crypto';

export interface ServiceAccountTokenOptions {
  /** Default `system:serviceaccount:default:app`. */
  readonly subject?: string;
  /** Default `api://AzureADTokenExchange` (what azure-workload-identity projects). */
  readonly audience?: string;
  /** Default 3600 (kubelet's minimum projected-token lifetime is 10 minutes, the default one hour). */
  readonly lifetimeSeconds?: number;
  /** Sign with a key the issuer does not publish (a forged token). */
  readonly forged?: boolean;
}

export interface ServiceAccountIssuer {
  /** `iss` of the minted tokens, e.g. `http://127.0.0.1:41234`. */
  readonly issuer: string;
  readonly jwksUri: string;
  mint(options?: ServiceAccountTokenOptions): Promise<string>;
  stop(): Promise<void>;
}

type KeyPair = Awaited<ReturnType<typeof generateKeyPair>>;

export async function startServiceAccountIssuer(options: { nowMs?: () => number } = {}): Promise<ServiceAccountIssuer> {
  const nowMs = options.nowMs ?? Date.now;
  const key: KeyPair = await generateKeyPair('RS256', { extractable: true });
  const forgedKey: KeyPair = await generateKeyPair('RS256', { extractable: true });
  const kid = randomUUID();
  const jwk: JWK = { ...(await exportJWK(key.publicKey)), kid, use: 'sig', alg: 'RS256' };

  let issuer = '';
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    res.setHeader('content-type', 'application/json');
    if (path === '/.well-known/openid-configuration') {
      res.end(JSON.stringify({ issuer, jwks_uri: `${issuer}/openid/v1/jwks`, response_types_supported: ['id_token'], subject_types_supported: ['public'], id_token_signing_alg_values_supported: ['RS256'] }));
    } else if (path === '/openid/v1/jwks') {
      res.end(JSON.stringify({ keys: [jwk] }));
    } else if (path === '/_test/mint' && req.method === 'POST') {
      // For processes (the CLI): mint a projected token as kubelet would write it to the pod.
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        let options: ServiceAccountTokenOptions;
        try {
          options = chunks.length ? (JSON.parse(Buffer.concat(chunks).toString('utf8')) as ServiceAccountTokenOptions) : {};
        } catch {
          res.statusCode = 400;
          res.end('{"error":"body must be JSON"}');
          return;
        }
        mint(options).then(
          (token) => res.end(JSON.stringify({ token })),
          (error: unknown) => {
            res.statusCode = 500;
            res.end(JSON.stringify({ error: String(error) }));
          },
        );
      });
    } else {
      res.statusCode = 404;
      res.end('{"kind":"Status","code":404}');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  async function mint(mintOptions: ServiceAccountTokenOptions = {}): Promise<string> {
      const nowSeconds = Math.floor(nowMs() / 1000);
      const subject = mintOptions.subject ?? 'system:serviceaccount:default:app';
      const [, namespace = 'default', name = 'app'] = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(subject) ?? [];
      return new SignJWT({
        'kubernetes.io': { namespace, serviceaccount: { name, uid: randomUUID() }, pod: { name: `${name}-0`, uid: randomUUID() } },
      })
        .setProtectedHeader({ alg: 'RS256', kid })
        .setIssuer(issuer)
        .setSubject(subject)
        .setAudience([mintOptions.audience ?? 'api://AzureADTokenExchange'])
        .setIssuedAt(nowSeconds)
        .setNotBefore(nowSeconds)
        .setExpirationTime(nowSeconds + (mintOptions.lifetimeSeconds ?? 3600))
        .setJti(randomUUID())
        .sign(mintOptions.forged ? forgedKey.privateKey : key.privateKey);
  }

  return {
    issuer,
    jwksUri: `${issuer}/openid/v1/jwks`,
    mint,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
