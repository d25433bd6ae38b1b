import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import type { KubectlResult } from './manifests.ts';

/** The checkout's hack/ directory: on the PATH, `kubectl berth` finds kubectl-berth there as kubectl would. */
export const PLUGIN_DIR = resolve('hack');

/**
 * Runs the real plugin (hack/kubectl-berth, the project's Node) as a child process
 * against the test cluster; its stdout is a pipe, not a terminal. `env` adds to or
 * overrides the test's environment.
 */
export function kubectlBerth(args: string[], env: Record<string, string | undefined> = {}): Promise<KubectlResult> {
  return new Promise((done) => {
    execFile(resolve(PLUGIN_DIR, 'kubectl-berth'), args, { env: { ...process.env, ...env }, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      done({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}
