import { berthClient } from '../test/support/berth.ts';
import { clients } from '../test/support/kube.ts';
import { operatorConfigFile, startOperatorProcess } from '../test/support/operator-process.ts';
import { waitFor } from '../test/support/wait.ts';
const { core } = clients();
const berth = berthClient();
const run = Date.now().toString(36);
const operator = await startOperatorProcess({ identity: `probe-${run}`, configFile: operatorConfigFile({ leaderElection: { leaseName: `probe-${run}` } }) });
await waitFor(async () => (await operator.metric('leader_election_master_status', { name: `probe-${run}` })) === 1, { description: 'lead' });
for (let i = 0; i < 2; i++) {
  const name = `probe-${run}-${i}`;
  const t0 = Date.now();
  const mark = (what: string) => console.log(`${Date.now() - t0} ms ${what}`);
  await berth.createApplication(name, { environment: 'testing' });
  await waitFor(async () => (await core.listNamespace({ fieldSelector: `metadata.name=${name}` })).items.length === 1, { description: 'ns', intervalMs: 10 });
  mark('namespace');
  await berth.createVersion(name, 'v1', { image: 'registry.example/bench:1', replicas: 3, healthCheck: { path: '/healthz' } });
  mark('version created');
  await waitFor(async () => {
    const v = await berth.getVersion(name, 'v1');
    return v?.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True' && v.status.readyReplicas === 3;
  }, { description: 'ready', intervalMs: 10 });
  mark('ready');
  const logs = operator.logs().split('\n').filter((l) => l.includes(name)).map((l) => { try { const j = JSON.parse(l); return `${new Date(j.time).getTime() - t0} ${j.msg} ${j.reason ?? ''} ${j.err ?? ''}`; } catch { return l; } });
  console.log(logs.join('\n'));
  await berth.deleteApplication(name);
}
await operator.stop();
process.exit(0);
