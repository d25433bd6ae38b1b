import type { V1Deployment } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPLICAS_HANDED_OVER_ANNOTATION } from '../../src/labels.ts';
import { berthClient, testApplicationName } from '../support/berth.ts';
import { clients } from '../support/kube.ts';
import { operatorConfigFile, startOperatorProcess, type OperatorProcess } from '../support/operator-process.ts';
import { waitFor } from '../support/wait.ts';

// Once a Version autoscales, the HorizontalPodAutoscaler decides its replicas: Berth's
// applies must neither carry them (from a cache that may be older than the autoscaler's
// last decision) nor reset them when the field changes hands.

const { kc, apps } = clients();
const berth = berthClient(kc);
let operator: OperatorProcess;

beforeAll(async () => {
  operator = await startOperatorProcess({
    identity: 'autoscaling',
    configFile: operatorConfigFile({ leaderElection: { leaseName: 'berth-autoscaling-test' } }),
  });
});
afterAll(async () => {
  await operator?.stop();
});

/** The field managers that own spec.replicas. */
function replicaOwners(deployment: V1Deployment): string[] {
  return (deployment.metadata?.managedFields ?? [])
    .filter((entry) => (entry.fieldsV1 as { 'f:spec'?: Record<string, unknown> } | undefined)?.['f:spec']?.['f:replicas'] !== undefined)
    .map((entry) => entry.manager!)
    .sort();
}

function deploymentWhere(namespace: string, name: string, test: (deployment: V1Deployment) => boolean, description: string): Promise<V1Deployment> {
  return waitFor(
    async () => {
      const deployment = await apps.readNamespacedDeployment({ name, namespace }).catch(() => undefined);
      return deployment && test(deployment) ? deployment : undefined;
    },
    { description },
  );
}

describe('Version autoscaling', () => {
  const app = testApplicationName('autoscale');
  const fresh = testApplicationName('autoscale-new');
  const image = 'registry.example.com/autoscale:1';

  it('hands replicas to the autoscaler when autoscaling turns on, never undoes its decisions, and takes them back when it turns off', async () => {
    await berth.createApplication(app, { environment: 'development', ports: [{ name: 'http', port: 8080 }] });
    await berth.applicationCondition(app, 'Ready', 'False', 'NoVersions');
    await berth.createVersion(app, 'v1', { image, replicas: 3 });
    await deploymentWhere(app, 'v1', (d) => d.spec?.replicas === 3, 'the Deployment at 3 replicas');

    await berth.patchVersionSpec(app, 'v1', { image, replicas: 3, autoscaling: { minReplicas: 2, maxReplicas: 6 } });
    const handedOver = await deploymentWhere(
      app,
      'v1',
      (d) => d.metadata?.annotations?.[REPLICAS_HANDED_OVER_ANNOTATION] !== undefined && !replicaOwners(d).includes('berth-operator'),
      'replicas handed over',
    );
    // Not reset to the default of 1 on the way.
    expect(handedOver.spec?.replicas).toBe(3);

    // The autoscaler's decision, written the way the HPA controller writes it: through the scale subresource.
    await apps.replaceNamespacedDeploymentScale({
      name: 'v1',
      namespace: app,
      fieldManager: 'test-autoscaler',
      body: { apiVersion: 'autoscaling/v1', kind: 'Scale', metadata: { name: 'v1', namespace: app }, spec: { replicas: 5 } },
    });
    // A later change of the Version makes Berth apply the Deployment again.
    await berth.patchVersionSpec(app, 'v1', { image, replicas: 3, drainSeconds: 25, autoscaling: { minReplicas: 2, maxReplicas: 6 } });
    const reapplied = await deploymentWhere(
      app,
      'v1',
      (d) => d.spec?.template?.spec?.containers?.[0]?.lifecycle?.preStop?.sleep?.seconds === 25,
      'the new drain time applied',
    );
    expect(reapplied.spec?.replicas).toBe(5);
    expect(replicaOwners(reapplied)).not.toContain('berth-operator');

    await berth.patchVersionSpec(app, 'v1', { image, replicas: 4 });
    const takenBack = await deploymentWhere(
      app,
      'v1',
      (d) => d.spec?.replicas === 4 && d.metadata?.annotations?.[REPLICAS_HANDED_OVER_ANNOTATION] === undefined,
      'spec.replicas in force again',
    );
    expect(replicaOwners(takenBack)).toContain('berth-operator');
  });

  it('starts a new autoscaled Version at minReplicas and leaves them to the autoscaler from then on', async () => {
    await berth.createApplication(fresh, { environment: 'development', ports: [{ name: 'http', port: 8080 }] });
    await berth.applicationCondition(fresh, 'Ready', 'False', 'NoVersions');
    await berth.createVersion(fresh, 'v1', { image, autoscaling: { minReplicas: 2, maxReplicas: 4 } });
    const created = await deploymentWhere(
      fresh,
      'v1',
      // Berth shares the field from its creating apply until its next apply, which leaves it out.
      (d) => d.metadata?.annotations?.[REPLICAS_HANDED_OVER_ANNOTATION] !== undefined && !replicaOwners(d).includes('berth-operator'),
      'the new Deployment handed over',
    );
    expect(created.spec?.replicas).toBe(2);
    expect(replicaOwners(created)).toContain('berth-autoscaling-handover');
  });
});
