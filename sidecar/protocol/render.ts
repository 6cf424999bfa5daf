/**
 * One entry point per direction for the HTTP edge: render a token or an error in the shape of the request's dialect.
 * The edge's single error handler calls {@link renderError}, so every failure of every dialect is rendered here.
 *
 * Pure.
 */
import type { SidecarError } from '../errors.ts';
import type { IssuedToken } from '../token/token-source.ts';
import { renderAppServiceError } from './app-service.ts';
import { renderJsonOk, renderTokenBody, type RenderedResponse, type SelectorEcho } from './common.ts';
import type { Dialect } from './dialect.ts';
import { renderImdsError } from './imds.ts';
import { renderCloudShellError } from './msi-endpoint.ts';

/**
 * Renders an error in the dialect's own shape (docs/protocols.md §4.1). The Azure ML / App Service 2017 GET forms of
 * `msi-endpoint` answer like App Service (MSAL Python's ML path and MSAL.NET read `statusCode`/`message`); Arc's
 * HIMDS answers like IMDS; `unknown` (no route matched, oversized headers before routing) uses the IMDS shape, the
 * one every SDK parses.
 */
export function renderError(dialect: Dialect, error: SidecarError, correlationId: string): RenderedResponse {
  switch (dialect) {
    case 'app-service':
    case 'msi-endpoint':
      return renderAppServiceError(error, correlationId);
    case 'cloud-shell':
      return renderCloudShellError(error);
    case 'arc':
    case 'imds':
    case 'unknown':
      return renderImdsError(error);
  }
}

/**
 * Renders a token: the success body is the same in every dialect (docs/protocols.md §3.2), except that Arc echoes
 * the user-assigned selector the client sent, which msal-node, MSAL Python and MSAL Go verify case-insensitively
 * (docs/protocols.md §7 step 6).
 */
export function renderToken(dialect: Dialect, token: IssuedToken, nowSeconds: number, echo?: SelectorEcho): RenderedResponse {
  return renderJsonOk(renderTokenBody(token, nowSeconds, dialect === 'arc' ? echo : undefined));
}
