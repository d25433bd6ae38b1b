// Plays the containers of Berth's pods on the local cluster, whose nodes are kwok's and
// run nothing: every pod of an Application gets a small HTTP server on its pod IP that
// answers with the pod's name, so requests through a LoadBalancer really arrive.
//
//   hack/cluster.sh exec node hack/stand-in-pods.ts [--port 8080]
import { parseArgs } from 'node:util';
import { followPods } from '../test/support/pod-follower.ts';

const { values } = parseArgs({ options: { port: { type: 'string', default: '8080' } } });
const follower = await followPods(undefined, 'berth.dev/application', Number(values.port));
process.stdout.write(`answering on port ${values.port} for the pods of every Application\n`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void follower.stop().then(() => process.exit(0)));
}
