import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The plugin as kubectl runs it: hack/bin/kubectl-berth, which starts src/plugin/main.ts with the project's Node. */
export const KUBECTL_BERTH = fileURLToPath(new URL('../../hack/bin/kubectl-berth', import.meta.url));

export interface PluginResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `kubectl berth ARGS` as a child process, with the test cluster's KUBECONFIG unless `kubeconfig` is given. */
export function kubectlBerth(args: string[], options: { kubeconfig?: string; executable?: string } = {}): Promise<PluginResult> {
  const env = { ...process.env, ...(options.kubeconfig ? { KUBECONFIG: options.kubeconfig } : {}) };
  return new Promise((resolve) => {
    execFile(options.executable ?? KUBECTL_BERTH, args, { env, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}
