// Runs before every npm script that starts Node (package.json "scripts"): is the `node` npm chose the Node 24 this
// project needs? Plain JavaScript that any Node since 12 can run, so the message reaches users whose system Node
// is older. Which Node npm runs: npm puts ./node_modules/.bin first on PATH, and `npm ci` installs there the one
// per-platform Node package (package.json "optionalDependencies") whose "os"/"cpu" match this machine — npm
// skips the others, so nothing is downloaded at install time and no install script runs. Where no package exists
// (macOS on Apple silicon, Windows on arm64, other systems), the system Node is used and must be 24.
// README "Platforms" lists them; test/release/platforms.test.ts checks this script and the packages.
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));

/** `>=24.2.0 <25` -> the minimum version and the exclusive upper major. */
export function parseEngines(range) {
  const match = /^>=(\d+)\.(\d+)\.(\d+) <(\d+)$/.exec(range);
  if (!match) throw new Error(`package.json engines.node must read ">=X.Y.Z <N", not "${range}"`);
  return { min: [Number(match[1]), Number(match[2]), Number(match[3])], belowMajor: Number(match[4]) };
}

/** The per-platform package that provides Node for `platform-arch`, if package.json lists one. */
export function runtimePackage(platform, arch, optional) {
  const name = `node-${platform === 'win32' ? 'win' : platform}-${arch}`;
  return Object.prototype.hasOwnProperty.call(optional, name) ? name : undefined;
}

/** An actionable message when `version` (e.g. "v22.1.0") does not satisfy engines.node, else undefined. */
export function problem({ version, platform, arch, execPath }, manifest) {
  const { min, belowMajor } = parseEngines(manifest.engines.node);
  const have = version.replace(/^v/, '').split('.').map(Number);
  let ok = have[0] < belowMajor;
  for (let i = 0; ok && i < 3; i++) {
    if (have[i] !== min[i]) {
      ok = have[i] > min[i];
      break;
    }
  }
  if (ok) return undefined;
  const wanted = `Node.js ${manifest.engines.node}`;
  const pkgName = runtimePackage(platform, arch, manifest.optionalDependencies || {});
  const fix = pkgName
    ? `npm ci installs it from the ${pkgName} package: run \`npm ci\` (without --omit=optional or --no-optional) and start through npm (\`npm start\`, \`npm test\`), which puts ./node_modules/.bin first on PATH.`
    : `No Node package is published for ${platform}-${arch}: install Node.js 24 yourself (https://nodejs.org/en/download, \`nvm install 24\`, \`brew install node@24\`, or \`fnm install 24\`) so that \`node\` on PATH is version 24.`;
  return `mi-anywhere needs ${wanted}; this is ${version} (${execPath}) on ${platform}-${arch}. ${fix}`;
}

if (import.meta.url === new URL(process.argv[1] ?? '', 'file:').href) {
  const message = problem(process, pkg);
  if (message) {
    process.stderr.write(`${message}\n`);
    process.exit(1);
  }
}
