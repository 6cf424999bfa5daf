import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../../../sidecar/config.ts';
import { allowedHosts, baseUrlFor, urlHost } from '../../../../sidecar/startup/addresses.ts';

describe('urlHost', () => {
  const cases = [
    { address: '127.0.0.1', want: '127.0.0.1' },
    { address: '0.0.0.0', want: '127.0.0.1' },
    { address: '::', want: '[::1]' },
    { address: '::1', want: '[::1]' },
    { address: 'fd00::5', want: '[fd00::5]' },
    { address: '10.1.2.3', want: '10.1.2.3' },
  ];
  for (const { address, want } of cases) it(`${address} -> ${want}`, () => assert.equal(urlHost(address), want));
});

describe('baseUrlFor', () => {
  it('is the bound address when none is configured (a wildcard through loopback)', () => {
    const config = loadConfig({}, ['--dev']);
    assert.equal(baseUrlFor(config, { address: '127.0.0.1', port: 50342 }), 'http://127.0.0.1:50342');
    assert.equal(baseUrlFor(config, { address: '::', port: 8080 }), 'http://[::1]:8080');
  });
  it('is the configured one when set', () => {
    const config = loadConfig({ MI_ANYWHERE_ADVERTISE_URL: 'http://sidecar.example:9000' }, ['--dev']);
    assert.equal(baseUrlFor(config, { address: '127.0.0.1', port: 50342 }), 'http://sidecar.example:9000');
  });
});

describe('allowedHosts', () => {
  const config = loadConfig({ MI_ANYWHERE_ALLOWED_HOSTS: 'a.example' }, ['--dev']);
  it('the configured names, the advertised host and a specific bind address', () => {
    assert.deepEqual(allowedHosts(config, 'http://sidecar.example:9000', '10.1.2.3'), ['a.example', 'sidecar.example', '10.1.2.3']);
  });
  it('no wildcard bind address, and an IPv6 advertised host without brackets', () => {
    assert.deepEqual(allowedHosts(config, 'http://[fd00::5]:9000', '0.0.0.0'), ['a.example', 'fd00::5']);
    assert.deepEqual(allowedHosts(config, 'http://127.0.0.1:1', '::'), ['a.example', '127.0.0.1']);
  });
});
