/**
 * The webhook's three listeners (admission, health, metrics) on 127.0.0.1 at the given ports, as the environment
 * the webhook reads (webhook/config.ts, WEBHOOK_ENV): what every test and benchmark that starts the real webhook
 * process on this machine passes.
 */
import { WEBHOOK_ENV } from '../../webhook/config.ts';

export interface WebhookPorts {
  readonly port: number;
  readonly healthPort: number;
  readonly metricsPort: number;
}

export function loopbackWebhookListeners(ports: WebhookPorts): Record<string, string> {
  return {
    [WEBHOOK_ENV.address]: '127.0.0.1',
    [WEBHOOK_ENV.port]: String(ports.port),
    [WEBHOOK_ENV.healthAddress]: '127.0.0.1',
    [WEBHOOK_ENV.healthPort]: String(ports.healthPort),
    [WEBHOOK_ENV.metricsAddress]: '127.0.0.1',
    [WEBHOOK_ENV.metricsPort]: String(ports.metricsPort),
  };
}
