// Plays the containers of Berth's pods on the local cluster, whose nodes are kwok's and
// run nothing: every pod of an Application gets a small HTTP server on its pod IP that
// answers with the pod's name, so requests through a LoadBalancer really arrive. A pod
// whose container sets STAND_IN_ERROR_RATE (e.g. 0.3, through the Version's env) answers
// that share of its requests with 503: a broken release to watch being aborted.
//
//   hack/cluster.sh exec node hack/stand-in-pods.ts [--port 8080]
import { parseArgs } from 'node:util';
import { failingAt, followPods } from '../test/support/pod-follower.ts';

const { values } = parseArgs({ options: { port: { type: 'string', default: '8080' } } });
const follower = await followPods(undefined, 'berth.dev/application', Number(values.port), undefined, (pod) => {
  const rate = Number(pod.spec?.containers[0]?.env?.find((variable) => variable.name === 'STAND_IN_ERROR_RATE')?.value);
  return rate > 0 ? failingAt(() => rate) : undefined;
});
process.stdout.write(`answering on port ${values.port} for the pods of every Application\n`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void follower.stop().then(() => process.exit(0)));
}
