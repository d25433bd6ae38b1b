// Writes the krew release of kubectl-berth: dist/kubectl-berth.tar.gz (the single-file
// plugin of `make plugin` and its completion helper, byte for byte the same for the same
// build) and dist/krew/berth.yaml, the manifest plugins/berth.yaml with the version, URL
// and sha256 of that archive.
//   node hack/plugin-archive.ts [--url URL]
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const root = new URL('..', import.meta.url).pathname;
const dist = join(root, 'dist');
const archive = join(dist, 'kubectl-berth.tar.gz');
const { values } = parseArgs({
  // Where the release will publish the archive; by default the local file, which
  // `kubectl krew install --manifest=... --archive=...` installs from.
  options: { url: { type: 'string', default: `file://${archive}` } },
});

const staging = mkdtempSync(join(tmpdir(), 'kubectl-berth-'));
try {
  copyFileSync(join(dist, 'kubectl-berth.mjs'), join(staging, 'kubectl-berth'));
  copyFileSync(join(root, 'hack', 'bin', 'kubectl_complete-berth'), join(staging, 'kubectl_complete-berth'));
  for (const file of ['kubectl-berth', 'kubectl_complete-berth']) chmodSync(join(staging, file), 0o755);
  // Fixed order, times and owners, and gzip without a name or time: the same input, the same archive.
  const tar = execFileSync('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '-C', staging, '-cf', '-', 'kubectl-berth', 'kubectl_complete-berth'], { maxBuffer: 256 * 1024 * 1024 });
  writeFileSync(archive, execFileSync('gzip', ['-n', '-9'], { input: tar, maxBuffer: 256 * 1024 * 1024 }));
} finally {
  rmSync(staging, { recursive: true, force: true });
}

const version = `v${(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version}`;
const sha256 = createHash('sha256').update(readFileSync(archive)).digest('hex');
const fields: Record<string, string> = { TagName: version, URI: values.url, Sha256: sha256 };
const manifest = readFileSync(join(root, 'plugins', 'berth.yaml'), 'utf8').replace(/\{\{ \.(\w+) \}\}/g, (_, field: string) => {
  if (!(field in fields)) throw new Error(`plugins/berth.yaml names {{ .${field} }}, which hack/plugin-archive.ts does not fill`);
  return fields[field]!;
});
mkdirSync(join(dist, 'krew'), { recursive: true });
writeFileSync(join(dist, 'krew', 'berth.yaml'), manifest);
process.stdout.write(`${archive}\n${join(dist, 'krew', 'berth.yaml')} (${version}, sha256 ${sha256})\n`);
