/**
 * README's "Install on Kubernetes (Helm)" commands, parsed, so the tests run what the README shows: the chart
 * tests install the chart the way "From a clone, with an image you build" does (test/chart/install.test.ts), and
 * the release tests check the published names and the version (test/release/workflows.test.ts).
 *
 * Test helper: reads README.md, no other I/O.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const REPO_ROOT = join(import.meta.dirname, '..', '..');

/** One `helm install` command line (continuation lines joined). */
export interface HelmInstall {
  readonly release: string;
  readonly chart: string;
  readonly version: string | undefined;
  readonly namespace: string;
  readonly createNamespace: boolean;
  /** `--set key=value` pairs in order. */
  readonly set: Readonly<Record<string, string>>;
}

export interface ReadmeInstall {
  readonly published: HelmInstall;
  readonly clone: HelmInstall & { readonly imageBuilt: string; readonly imagePushed: string };
  /** The image references `cosign verify` is shown for. */
  readonly verified: readonly string[];
}

function section(text: string, marker: string, stop: RegExp): string {
  const start = text.indexOf(marker);
  if (start < 0) throw new Error(`README.md has no "${marker.trim()}"`);
  const rest = text.slice(start + marker.length);
  const end = rest.search(stop);
  return end < 0 ? rest : rest.slice(0, end);
}

function commands(text: string): string[] {
  const blocks = [...text.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
  return blocks.flatMap((b) => b.replaceAll('\\\n', ' ').split('\n')).map((l) => l.replace(/\s+#.*$/, '').replace(/\s+/g, ' ').trim());
}

export function parseHelmInstall(line: string): HelmInstall {
  const words = line.split(' ');
  if (words[0] !== 'helm' || words[1] !== 'install' || words.length < 4) throw new Error(`not a helm install: ${line}`);
  const [release = '', chart = ''] = words.slice(2, 4);
  const set: Record<string, string> = {};
  let version: string | undefined;
  let namespace = 'default';
  let createNamespace = false;
  for (let i = 4; i < words.length; i++) {
    const word = words[i];
    const next = words[i + 1] ?? '';
    if (word === '--version') version = words[++i];
    else if (word === '--namespace') namespace = words[++i] ?? '';
    else if (word === '--create-namespace') createNamespace = true;
    else if (word === '--set') {
      const [key = '', ...value] = next.split('=');
      set[key] = value.join('=');
      i++;
    } else throw new Error(`unexpected "${word}" in: ${line}`);
  }
  return { release, chart, version, namespace, createNamespace, set };
}

export function readmeInstall(text = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8')): ReadmeInstall {
  const install = section(text, '\n## Install on Kubernetes (Helm)\n', /\n## /);
  const published = commands(section(install, '\n### From the published chart\n', /\n### /));
  const clone = commands(section(install, '\n### From a clone, with an image you build\n', /\n\*\*Air-gapped|\n### /));
  const helm = (lines: string[]): HelmInstall => {
    const found = lines.filter((l) => l.startsWith('helm install '));
    if (found.length !== 1) throw new Error(`expected one helm install, found ${found.length}`);
    return parseHelmInstall(found[0] ?? '');
  };
  const word = (lines: string[], pattern: RegExp): string => {
    const match = lines.map((l) => pattern.exec(l)).find((m) => m !== null);
    if (!match) throw new Error(`README clone install has no ${pattern}`);
    return match[1] ?? '';
  };
  return {
    published: helm(published),
    clone: { ...helm(clone), imageBuilt: word(clone, /^docker build -t (\S+) \.$/), imagePushed: word(clone, /^docker push (\S+)$/) },
    verified: published.map((l) => /^cosign verify (\S+)/.exec(l)?.[1]).filter((r): r is string => r !== undefined),
  };
}
