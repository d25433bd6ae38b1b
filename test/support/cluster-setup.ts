import { DEFAULT_LOADBALANCER_NAMESPACE } from '../../src/api/loadbalancer.ts';
import { clients, isNotFound } from './kube.ts';
import { installCrds, kubectlApply } from './manifests.ts';

export const OPERATOR_NAMESPACE = 'berth-system';

/**
 * Integration tests need the local cluster (or any cluster KUBECONFIG points at) and,
 * for traffic to pod IPs, its network namespace. `make test` provides both; this check
 * turns a missing cluster into one clear message instead of a wall of timeouts. It then
 * installs what the operator expects to find: the CRDs, the shared ClusterRoles, the
 * admission policies, the namespace of its leader-election lease and the default one of
 * load-balancer pods.
 */
export default async function setUpCluster(): Promise<void> {
  if (!process.env.KUBECONFIG) {
    throw new Error(
      'KUBECONFIG is not set. Run the integration tests through `make test`, or inside the ' +
        'local cluster: `hack/cluster.sh up && hack/cluster.sh exec npx vitest run --project integration`.',
    );
  }
  const { core, version } = clients();
  try {
    await version.getCode();
  } catch (error) {
    throw new Error(
      `the cluster in KUBECONFIG=${process.env.KUBECONFIG} does not answer (${String(error)}); ` +
        'start it with `hack/cluster.sh up`',
      { cause: error },
    );
  }
  await installCrds('crds');
  await kubectlApply('config/rbac/', 'config/admission/');
  for (const name of [OPERATOR_NAMESPACE, DEFAULT_LOADBALANCER_NAMESPACE]) {
    try {
      await core.readNamespace({ name });
    } catch (error) {
      if (!isNotFound(error)) throw error;
      await core.createNamespace({ body: { metadata: { name } } });
    }
  }
}
