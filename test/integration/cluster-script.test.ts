import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/wait.ts';

// hack/cluster.sh itself, exercised on a second, throw-away cluster in a network
// namespace of its own (the suite's own cluster keeps running beside it).

const run = promisify(execFile);
const netns = `berth-lifecycle-${process.pid}`;
const clusterDir = mkdtempSync(join(tmpdir(), 'berth-lifecycle-'));
const env = { ...process.env, BERTH_NETNS: netns, BERTH_CLUSTER_DIR: clusterDir, BERTH_CLUSTER_NODES: '1' };

async function cluster(...args: string[]): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run('hack/cluster.sh', args, { env, timeout: 180_000 });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? -1, output: `${failed.stdout ?? ''}${failed.stderr ?? ''}` };
  }
}

async function namespaces(): Promise<string[]> {
  const { stdout } = await run('ip', ['netns', 'list']);
  return stdout.split('\n').map((line) => line.split(' ')[0] ?? '');
}

function componentPids(): number[] {
  const runDir = join(clusterDir, 'run');
  return readdirSync(runDir).map((file) => Number(readFileSync(join(runDir, file), 'utf8')));
}

function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

afterAll(async () => {
  await cluster('down');
  rmSync(clusterDir, { recursive: true, force: true });
});

describe('hack/cluster.sh', () => {
  it('comes up, is idempotent, restarts only a crashed component keeping the data, and tears down without leftovers', async () => {
    const first = await cluster('up');
    expect(first.output).toMatch(/cluster up in \d+s/);
    expect(first.code).toBe(0);
    expect(await namespaces()).toContain(netns);
    expect((await cluster('status')).code).toBe(0);

    const second = await cluster('up');
    expect(second.code).toBe(0);
    expect(second.output).toContain('cluster already running');

    // Data written before a component dies is still there after `up` repaired it.
    expect((await cluster('exec', 'kubectl', 'create', 'configmap', 'survivor', '--from-literal=kept=yes')).code).toBe(0);
    const etcdPid = Number(readFileSync(join(clusterDir, 'run', 'etcd.pid'), 'utf8'));
    const apiServerPid = Number(readFileSync(join(clusterDir, 'run', 'kube-apiserver.pid'), 'utf8'));
    process.kill(apiServerPid, 'SIGKILL');
    // The signal is delivered when the process next runs, which on a busy machine is not at once.
    await waitFor(() => !isRunning(apiServerPid), { description: 'the killed kube-apiserver to be gone', timeoutMs: 10_000, intervalMs: 50 });
    const degraded = await cluster('status');
    expect(degraded.code).not.toBe(0);
    expect(degraded.output).toMatch(/kube-apiserver\s+stopped/);

    const recovered = await cluster('up');
    expect(recovered.code).toBe(0);
    expect(recovered.output).toContain('restarting kube-apiserver; the cluster\'s data is kept');
    expect(recovered.output).toMatch(/cluster up in \d+s/);
    expect((await cluster('status')).code).toBe(0);
    // Only what died was restarted, and nothing was wiped.
    expect(Number(readFileSync(join(clusterDir, 'run', 'etcd.pid'), 'utf8'))).toBe(etcdPid);
    const survivor = await cluster('exec', 'kubectl', 'get', 'configmap', 'survivor', '-o', 'jsonpath={.data.kept}');
    expect(survivor.output).toContain('yes');

    const pids = componentPids();
    expect(pids).toHaveLength(5);
    const down = await cluster('down');
    expect(down.code).toBe(0);
    expect(await namespaces()).not.toContain(netns);
    expect(pids.filter(isRunning)).toEqual([]);
    expect(readdirSync(clusterDir).sort()).toEqual(['logs']);

    // A second down on a cluster that is already gone is harmless.
    expect((await cluster('down')).code).toBe(0);
  });
});
