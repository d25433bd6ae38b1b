import { clients } from './kube.ts';

/**
 * Integration tests need the local cluster (or any cluster KUBECONFIG points at) and,
 * for traffic to pod IPs, its network namespace. `make test` provides both; this check
 * turns a missing cluster into one clear message instead of a wall of timeouts.
 */
export default async function checkCluster(): Promise<void> {
  if (!process.env.KUBECONFIG) {
    throw new Error(
      'KUBECONFIG is not set. Run the integration tests through `make test`, or inside the ' +
        'local cluster: `hack/cluster.sh up && hack/cluster.sh exec npx vitest run --project integration`.',
    );
  }
  try {
    const { version } = clients();
    await version.getCode();
  } catch (error) {
    throw new Error(
      `the cluster in KUBECONFIG=${process.env.KUBECONFIG} does not answer (${String(error)}); ` +
        'start it with `hack/cluster.sh up`',
      { cause: error },
    );
  }
}
