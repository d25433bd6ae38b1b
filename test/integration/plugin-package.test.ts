import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { EXIT } from '../../src/plugin/errors.ts';

// The release as krew installs it: `make plugin-archive` builds the single-file plugin
// and the archive its manifest points at; kubectl then finds kubectl-berth on the PATH
// and runs it for `kubectl berth`, and completes through kubectl_complete-berth.

const run = promisify(execFile);
const root = new URL('../..', import.meta.url).pathname;
const unpacked = mkdtempSync(join(tmpdir(), 'berth-krew-'));
afterAll(() => rmSync(unpacked, { recursive: true, force: true }));

interface KrewManifest {
  kind: string;
  metadata: { name: string };
  spec: { version: string; platforms: { uri: string; sha256: string; bin: string; files: { from: string; to: string }[] }[] };
}
let manifest: KrewManifest;

/** kubectl with the unpacked archive first on the PATH, and the project's Node for the plugin's shebang. */
async function kubectlWithPlugin(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const path = [unpacked, dirname(process.execPath), process.env.PATH].join(':');
  return run('kubectl', args, { env: { ...process.env, PATH: path } }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, stdout: error.stdout, stderr: error.stderr }),
  );
}

beforeAll(async () => {
  await run('make', ['plugin-archive'], { cwd: root, maxBuffer: 64 * 1024 * 1024 });
  await run('tar', ['-xzf', join(root, 'dist/kubectl-berth.tar.gz'), '-C', unpacked]);
  manifest = parse(readFileSync(join(root, 'dist/krew/berth.yaml'), 'utf8')) as KrewManifest;
}, 120_000);

describe('the krew release of kubectl-berth', () => {
  it('has a manifest whose archive, sha256 and files match what was built', () => {
    expect(manifest).toMatchObject({ kind: 'Plugin', metadata: { name: 'berth' }, spec: { version: expect.stringMatching(/^v\d+\.\d+\.\d+$/) } });
    const [platform] = manifest.spec.platforms;
    expect(platform!.sha256).toBe(createHash('sha256').update(readFileSync(join(root, 'dist/kubectl-berth.tar.gz'))).digest('hex'));
    for (const file of platform!.files) accessSync(join(unpacked, file.from), constants.X_OK);
    expect(platform!.bin).toBe('kubectl-berth');
    expect(readFileSync(join(unpacked, 'kubectl-berth'), 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
  });

  it('runs as `kubectl berth` and reaches the cluster', async () => {
    const result = await kubectlWithPlugin(['berth', 'promote', 'no-such-app']);
    expect(result).toMatchObject({ code: EXIT.notFound, stderr: 'error: there is no Application "no-such-app" (kubectl get applications.berth.dev lists them)\n' });
  });

  it('completes kubectl-berth in bash with the script of `completion bash`', async () => {
    const path = [unpacked, dirname(process.execPath), process.env.PATH].join(':');
    const script = 'source <(kubectl-berth completion bash); COMP_WORDS=(kubectl-berth promote --f); COMP_CWORD=2; _kubectl_berth; echo "${COMPREPLY[@]}"';
    const { stdout } = await run('bash', ['-c', script], { env: { ...process.env, PATH: path } });
    expect(stdout).toBe('--full\n');
  });

  it('completes `kubectl berth` through kubectl', async () => {
    const result = await kubectlWithPlugin(['__complete', 'berth', 'ro']);
    expect(result.stdout).toBe('rollback\n:4\n');
  });
});
