import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isLoopbackAddress, loadConfig, type Env } from '../../../sidecar/config.ts';
import { ConfigError } from '../../../sidecar/errors.ts';

function problemsOf(env: Env, argv: readonly string[] = []): readonly string[] {
  try {
    loadConfig(env, argv);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  assert.fail('expected a ConfigError');
}

describe('loadConfig: defaults and modes', () => {
  it('dev mode by flag, with the documented defaults', () => {
    const c = loadConfig({}, ['--dev']);
    assert.equal(c.mode, 'dev');
    assert.deepEqual(c.token, { address: '127.0.0.1', port: 50342 });
    assert.deepEqual(c.health, { address: '0.0.0.0', port: 50343 });
    assert.deepEqual(c.metrics, { address: '0.0.0.0', port: 50344 });
    assert.equal(c.identityHeader, undefined);
    assert.equal(c.arc.keyFileMode, 0o640);
    assert.equal(c.authorityHost, 'https://login.microsoftonline.com');
    assert.equal(c.logLevel, 'info');
    assert.equal(c.rateLimitPerSecond, 0);
    assert.equal(c.probe, false);
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.token) && Object.isFrozen(c.limits));
  });
  it('dev mode by MI_ANYWHERE_MODE=dev', () => assert.equal(loadConfig({ MI_ANYWHERE_MODE: 'dev' }, []).mode, 'dev'));
  it('entra mode by default, with an identity dir', () => assert.equal(loadConfig({ MI_ANYWHERE_IDENTITY_DIR: '/ids' }, []).mode, 'entra'));
  it('port 0 for every listener', () => {
    const c = loadConfig({ MI_ANYWHERE_TOKEN_PORT: '0', MI_ANYWHERE_HEALTH_PORT: '0', MI_ANYWHERE_METRICS_PORT: '0' }, ['--dev']);
    assert.deepEqual([c.token.port, c.health.port, c.metrics.port], [0, 0, 0]);
  });
  it('empty values mean default', () => assert.equal(loadConfig({ MI_ANYWHERE_TOKEN_PORT: '', MI_ANYWHERE_LOG_LEVEL: ' ' }, ['--dev']).token.port, 50342));
  it('non-loopback token address with explicit consent', () => {
    const c = loadConfig({ MI_ANYWHERE_TOKEN_ADDRESS: '0.0.0.0', MI_ANYWHERE_ALLOW_NON_LOOPBACK: 'true' }, ['--dev']);
    assert.equal(c.token.address, '0.0.0.0');
  });
  it('parses every option', () => {
    const c = loadConfig(
      {
        MI_ANYWHERE_IDENTITY_DIR: '/ids',
        MI_ANYWHERE_DEFAULT_IDENTITY: 'app',
        MI_ANYWHERE_IDENTITY_HEADER: 'x'.repeat(16),
        MI_ANYWHERE_ARC_KEY_DIR: '/arc',
        MI_ANYWHERE_ARC_KEY_FILE_MODE: '0644',
        MI_ANYWHERE_AUTHORITY_HOST: 'https://127.0.0.1:8443/',
        MI_ANYWHERE_FEDERATED_TOKEN_FILE: '/var/run/token',
        MI_ANYWHERE_LOG_LEVEL: 'debug',
        MI_ANYWHERE_RATE_LIMIT_PER_SECOND: '20',
        MI_ANYWHERE_ADVERTISE_URL: 'http://sidecar:50342/',
      },
      ['--probe'],
    );
    assert.equal(c.defaultIdentity, 'app');
    assert.equal(c.arc.keyDir, '/arc');
    assert.equal(c.arc.keyFileMode, 0o644);
    assert.equal(c.authorityHost, 'https://127.0.0.1:8443');
    assert.equal(c.advertiseUrl, 'http://sidecar:50342');
    assert.equal(c.rateLimitPerSecond, 20);
    assert.equal(c.probe, true);
  });
});

describe('loadConfig: problems', () => {
  const cases: { name: string; env: Env; argv?: string[]; want: RegExp[] }[] = [
    { name: 'entra mode without identity dir', env: {}, want: [/MI_ANYWHERE_IDENTITY_DIR is required in entra mode/] },
    { name: 'non-loopback token address without consent', env: { MI_ANYWHERE_TOKEN_ADDRESS: '0.0.0.0' }, argv: ['--dev'], want: [/not a loopback address.*MI_ANYWHERE_ALLOW_NON_LOOPBACK=true/] },
    { name: '--dev contradicts mode entra', env: { MI_ANYWHERE_MODE: 'entra', MI_ANYWHERE_IDENTITY_DIR: '/x' }, argv: ['--dev'], want: [/--dev contradicts/] },
    { name: 'unknown flag', env: {}, argv: ['--dev', '--verbose'], want: [/unknown argument "--verbose"/] },
    { name: 'same port twice', env: { MI_ANYWHERE_TOKEN_PORT: '9000', MI_ANYWHERE_METRICS_PORT: '9000' }, argv: ['--dev'], want: [/token and metrics listeners both use port 9000/] },
    {
      name: 'every field problem reported together',
      env: {
        MI_ANYWHERE_MODE: 'prod',
        MI_ANYWHERE_TOKEN_PORT: '70000',
        MI_ANYWHERE_HEALTH_PORT: 'abc',
        MI_ANYWHERE_METRICS_ADDRESS: 'not-an-ip',
        MI_ANYWHERE_ALLOW_NON_LOOPBACK: 'maybe',
        MI_ANYWHERE_IDENTITY_HEADER: 'short',
        MI_ANYWHERE_ARC_KEY_FILE_MODE: '0666',
        MI_ANYWHERE_AUTHORITY_HOST: 'http://127.0.0.1:8443',
        MI_ANYWHERE_LOG_LEVEL: 'loud',
        MI_ANYWHERE_RATE_LIMIT_PER_SECOND: '-1',
        MI_ANYWHERE_DEFAULT_IDENTITY: '../x',
        MI_ANYWHERE_ADVERTISE_URL: 'ftp://x',
      },
      argv: ['--nope'],
      want: [
        /unknown argument "--nope"/,
        /MI_ANYWHERE_MODE: must be "dev" or "entra"/,
        /MI_ANYWHERE_TOKEN_PORT: must be between 0 and 65535/,
        /MI_ANYWHERE_HEALTH_PORT: must be a number/,
        /MI_ANYWHERE_METRICS_ADDRESS: must be an IP address/,
        /MI_ANYWHERE_ALLOW_NON_LOOPBACK: must be true or false/,
        /MI_ANYWHERE_IDENTITY_HEADER: must be at least 16 characters/,
        /MI_ANYWHERE_ARC_KEY_FILE_MODE: must be readable and must not be writable/,
        /MI_ANYWHERE_AUTHORITY_HOST: must be an https URL/,
        /MI_ANYWHERE_LOG_LEVEL: must be one of/,
        /MI_ANYWHERE_RATE_LIMIT_PER_SECOND: must be 0 \(unlimited\) or more/,
        /MI_ANYWHERE_DEFAULT_IDENTITY: must be a directory name/,
        /MI_ANYWHERE_ADVERTISE_URL: must be an http\(s\) URL/,
        // Cross-field rules still run next to the field problems.
        /MI_ANYWHERE_IDENTITY_DIR is required in entra mode/,
      ],
    },
  ];
  for (const tc of cases) {
    it(tc.name, () => {
      const problems = problemsOf(tc.env, tc.argv);
      for (const want of tc.want) assert.ok(problems.some((p) => want.test(p)), `missing ${want} in:\n${problems.join('\n')}`);
      assert.equal(problems.length, tc.want.length, problems.join('\n'));
    });
  }
  const strict: { name: string; env: Env; want: string }[] = [
    { name: 'hexadecimal port', env: { MI_ANYWHERE_TOKEN_PORT: '0x0' }, want: 'MI_ANYWHERE_TOKEN_PORT: must be a number: a plain decimal integer (got "0x0")' },
    { name: 'exponent', env: { MI_ANYWHERE_HEALTH_PORT: '1e3' }, want: 'MI_ANYWHERE_HEALTH_PORT: must be a number: a plain decimal integer (got "1e3")' },
    { name: 'leading space', env: { MI_ANYWHERE_METRICS_PORT: ' 80' }, want: 'MI_ANYWHERE_METRICS_PORT: must be a number: a plain decimal integer (got " 80")' },
    { name: 'fraction', env: { MI_ANYWHERE_RATE_LIMIT_PER_SECOND: '2.5' }, want: 'MI_ANYWHERE_RATE_LIMIT_PER_SECOND: must be a number: a plain decimal integer (got "2.5")' },
    { name: 'leading zero', env: { MI_ANYWHERE_TOKEN_PORT: '08080' }, want: 'MI_ANYWHERE_TOKEN_PORT: must be a number: a plain decimal integer (got "08080")' },
    { name: 'misspelt name', env: { MI_ANYWHERE_TOKN_PORT: '8080' }, want: 'MI_ANYWHERE_TOKN_PORT: unknown setting; did you mean MI_ANYWHERE_TOKEN_PORT?' },
    { name: 'swapped letters', env: { MI_ANYWHERE_LOG_LEVLE: 'debug' }, want: 'MI_ANYWHERE_LOG_LEVLE: unknown setting; did you mean MI_ANYWHERE_LOG_LEVEL?' },
    { name: 'word left out', env: { MI_ANYWHERE_IDENTITY: '/ids' }, want: 'MI_ANYWHERE_IDENTITY: unknown setting; did you mean MI_ANYWHERE_IDENTITY_DIR?' },
    { name: 'unknown name, nothing close', env: { MI_ANYWHERE_COLOUR: 'blue' }, want: 'MI_ANYWHERE_COLOUR: unknown setting (the settings are listed in README.md, "Configuration")' },
  ];
  for (const tc of strict) {
    it(`strict: ${tc.name}`, () => {
      const problems = problemsOf(tc.env, ['--dev']);
      assert.equal(problems.length, 1, problems.join('\n'));
      assert.ok(problems[0]?.startsWith(tc.want), problems[0]);
    });
  }
  it('strict: every problem reported together, a secret value never echoed', () => {
    const problems = problemsOf({ MI_ANYWHERE_TOKEN_PORT: '0x0', MI_ANYWHERE_IDENTITY_HEADER: 'short secret', MI_ANYWHERE_MODDE: 'dev' }, ['--dev']);
    assert.deepEqual(problems, [
      'MI_ANYWHERE_MODDE: unknown setting; did you mean MI_ANYWHERE_MODE?',
      'MI_ANYWHERE_TOKEN_PORT: must be a number: a plain decimal integer (got "0x0")',
      'MI_ANYWHERE_IDENTITY_HEADER: must be at least 16 characters (it guards the token endpoint)',
    ]);
  });
  it('tolerates names that are not the sidecar\'s: the webhook\'s, Service links, the repository\'s tooling', () => {
    const c = loadConfig(
      {
        MI_ANYWHERE_WEBHOOK_LOG_LEVEL: 'debug',
        MI_ANYWHERE_WEBHOOK_PORT: 'tcp://10.96.0.12:443',
        MI_ANYWHERE_SIDECAR_SERVICE_HOST: '10.96.0.13',
        MI_ANYWHERE_SIDECAR_PORT: 'tcp://10.96.0.13:80',
        MI_ANYWHERE_SIDECAR_PORT_80_TCP_ADDR: '10.96.0.13',
        MI_ANYWHERE_TEST_LOG_DIR: '/tmp/logs',
        MI_ANYWHERE_SKIP_PROVISION: '1',
        HOME: '/root',
      },
      ['--dev'],
    );
    assert.equal(c.mode, 'dev');
  });
  it('a misspelt port whose value is not a Service link is still reported', () => {
    assert.deepEqual(problemsOf({ MI_ANYWHERE_HEALTH_PROT: '9000' }, ['--dev']), ['MI_ANYWHERE_HEALTH_PROT: unknown setting; did you mean MI_ANYWHERE_HEALTH_PORT?']);
  });
  it('field and cross-field problems together', () => {
    const problems = problemsOf({ MI_ANYWHERE_TOKEN_ADDRESS: '10.0.0.1', MI_ANYWHERE_METRICS_PORT: 'x', MI_ANYWHERE_HEALTH_PORT: '50342' }, ['--dev']);
    assert.equal(problems.length, 3, problems.join('\n'));
    assert.match(problems.join('\n'), /METRICS_PORT: must be a number[\s\S]*not a loopback address[\s\S]*token and health listeners both use port 50342/);
  });
  it('the error message lists every problem', () => {
    assert.throws(() => loadConfig({ MI_ANYWHERE_TOKEN_PORT: 'x', MI_ANYWHERE_LOG_LEVEL: 'y' }, ['--dev']), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, /2 problems/);
      assert.match(e.message, /MI_ANYWHERE_TOKEN_PORT/);
      assert.match(e.message, /MI_ANYWHERE_LOG_LEVEL/);
      return true;
    });
  });
});

describe('isLoopbackAddress', () => {
  const cases: [string, boolean][] = [
    ['127.0.0.1', true],
    ['127.1.2.3', true],
    ['::1', true],
    ['localhost', true],
    ['0.0.0.0', false],
    ['::', false],
    ['10.0.0.5', false],
  ];
  for (const [address, want] of cases) it(`${address} → ${want}`, () => assert.equal(isLoopbackAddress(address), want));
});
