/**
 * One entry point per direction for the HTTP edge: render a token or an error in the shape of the request's dialect.
 * The edge's single error handler calls {@link renderError}, so every failure of every dialect is rendered here.
 *
 * Pure.
 */
import type { SidecarError } from '../errors.ts';
import type { Dialect } from './dialect.ts';
import type { IssuedToken } from '../token/token-source.ts';
import { renderAppServiceError, renderAppServiceToken } from './app-service.ts';
import { renderArcError, renderArcToken } from './arc.ts';
import type { RenderedResponse, SelectorEcho } from './common.ts';
import { renderImdsError, renderImdsToken } from './imds.ts';
import { renderMsiEndpointError, renderMsiEndpointToken } from './msi-endpoint.ts';

/**
 * Renders an error in the dialect's own shape. `unknown` (no route matched, oversized headers before routing) uses
 * the IMDS shape, the one every SDK parses.
 */
export function renderError(dialect: Dialect, error: SidecarError, correlationId: string): RenderedResponse {
  switch (dialect) {
    case 'app-service':
      return renderAppServiceError(error, correlationId);
    case 'msi-endpoint':
    case 'cloud-shell':
      return renderMsiEndpointError(error, dialect, correlationId);
    case 'arc':
      return renderArcError(error);
    case 'imds':
    case 'unknown':
      return renderImdsError(error);
  }
}

export function renderToken(dialect: Dialect, token: IssuedToken, nowSeconds: number, echo?: SelectorEcho): RenderedResponse {
  switch (dialect) {
    case 'app-service':
      return renderAppServiceToken(token, nowSeconds);
    case 'msi-endpoint':
    case 'cloud-shell':
      return renderMsiEndpointToken(token, nowSeconds);
    case 'arc':
      return renderArcToken(token, nowSeconds, echo);
    case 'imds':
    case 'unknown':
      return renderImdsToken(token, nowSeconds);
  }
}
