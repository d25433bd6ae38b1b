import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { stringify } from 'yaml';

const run = promisify(execFile);

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs the real kubectl; a manifest given as `input` is sent on stdin: a string as it is,
 * anything else as YAML.
 */
export async function kubectl(args: string[], input?: unknown): Promise<KubectlResult> {
  return new Promise((resolve) => {
    const child = execFile('kubectl', args, { timeout: 60_000, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
    child.stdin!.end(input === undefined ? '' : typeof input === 'string' ? input : stringify(input));
  });
}

/**
 * `kubectl apply --server-side` of manifest files, with the real kubectl: typed
 * client libraries drop fields their models do not know (a CRD's `default`), kubectl
 * sends the files as they are.
 */
export async function kubectlApply(...files: string[]): Promise<void> {
  await run('kubectl', ['apply', '--server-side', '--force-conflicts', '--field-manager=berth-tests', ...files.flatMap((f) => ['-f', f])]);
}

/** Installs Berth's CRDs and waits until the API server serves them. */
export async function installCrds(dir: string): Promise<void> {
  await kubectlApply(dir);
  await run('kubectl', ['wait', '--for=condition=Established', '--timeout=60s', '-f', dir]);
}

/** Runs the real helm (built into the same cache as kubectl). */
export async function helm(args: string[]): Promise<KubectlResult> {
  return new Promise((resolve) => {
    execFile('helm', args, { timeout: 180_000, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}
