import { rmSync } from 'node:fs';
import { berthClient } from '../test/support/berth.ts';
import { deleteNamespace } from '../test/support/kube.ts';
import { waitFor } from '../test/support/wait.ts';

interface Stoppable {
  stop(): Promise<unknown>;
}

export interface RoutedApplicationBench {
  /** What runs beside the operator (agent, pod stand-ins, watches): stopped first, in this order. */
  running: ReadonlyArray<Stoppable | undefined>;
  app: string;
  lb: string;
  lbNamespace: string;
  operator: Stoppable;
  /** The agent's nginx prefix directory. */
  prefix: string;
}

/**
 * Cleans up after a benchmark of one application routed through one LoadBalancer, whatever
 * it got to: the Application goes while the operator still runs (its finalizer needs it),
 * then the LoadBalancer, the operator and the load-balancer namespace.
 */
export async function tearDownRoutedApplication({ running, app, lb, lbNamespace, operator, prefix }: RoutedApplicationBench): Promise<void> {
  const berth = berthClient();
  for (const part of running) await part?.stop();
  await berth.deleteApplication(app).catch(() => undefined);
  await waitFor(async () => (await berth.getApplication(app)) === undefined, { description: `application ${app} to be deleted`, timeoutMs: 120_000 }).catch(() => undefined);
  await berth.deleteLoadBalancer(lb).catch(() => undefined);
  await operator.stop();
  await deleteNamespace(lbNamespace).catch(() => undefined);
  rmSync(prefix, { recursive: true, force: true });
}
