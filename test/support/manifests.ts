import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

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
