import { ApiException } from '@kubernetes/client-node';
import { applicationNamespace, type Application } from '../api/application.ts';
import { RESOURCE_DEFINITIONS } from '../api/crd.ts';
import { API_VERSION } from '../api/meta.ts';
import { governingRelease, type Release } from '../api/release.ts';
import type { Version } from '../api/version.ts';
import { PooledKubeConfig } from '../kit/kubeconfig.ts';
import { KubeRest } from '../kit/rest.ts';
import { errorMessage } from '../kit/log.ts';
import { EXIT, PluginError } from './errors.ts';

/** How to reach the cluster: kubectl's rules (--kubeconfig, then KUBECONFIG, then ~/.kube/config; --context). */
export interface KubeconfigOptions {
  kubeconfig?: string;
  context?: string;
}

export function loadPluginKubeConfig({ kubeconfig, context }: KubeconfigOptions): PooledKubeConfig {
  const kc = new PooledKubeConfig();
  try {
    if (kubeconfig) kc.loadFromFile(kubeconfig);
    else kc.loadFromDefault();
  } catch (error) {
    throw new PluginError(`cannot read the kubeconfig${kubeconfig ? ` ${kubeconfig}` : ''}: ${errorMessage(error)}`);
  }
  if (context) {
    if (!kc.getContextObject(context)) {
      throw new PluginError(`the kubeconfig has no context "${context}"; it has: ${kc.getContexts().map((c) => c.name).join(', ') || 'none'}`);
    }
    kc.setCurrentContext(context);
  }
  if (!kc.getCurrentCluster()) throw new PluginError('the kubeconfig names no current cluster: pass --kubeconfig or --context, or set KUBECONFIG');
  return kc;
}

type Kind = 'Application' | 'Version' | 'Release';
const MERGE_PATCH = 'application/merge-patch+json';

function plural(kind: Kind): string {
  return RESOURCE_DEFINITIONS.find((definition) => definition.kind === kind)!.plural;
}

/** The API path of a Berth resource (or its collection, without a name). */
export function resourcePath(kind: Kind, namespace: string | undefined, name?: string): string {
  const scope = namespace ? `/namespaces/${encodeURIComponent(namespace)}` : '';
  return `/apis/${API_VERSION}${scope}/${plural(kind)}${name ? `/${encodeURIComponent(name)}` : ''}`;
}

export function isStatus(error: unknown, code: number): error is ApiException<string> {
  return error instanceof ApiException && error.code === code;
}

export interface WriteOptions {
  /** The API server checks and defaults the write, and stores nothing. */
  dryRun?: boolean;
}

const writeQuery = ({ dryRun }: WriteOptions) => ({ dryRun: dryRun ? 'All' : undefined, fieldManager: 'kubectl-berth' });

/** Berth's resources through the plain JSON client the operator uses (KubeRest). */
export class BerthApi {
  readonly rest: KubeRest;
  readonly kc: PooledKubeConfig;

  constructor(kc: PooledKubeConfig) {
    this.kc = kc;
    this.rest = new KubeRest(kc);
  }

  getApplication(name: string): Promise<Application> {
    return this.rest.request<Application>('GET', resourcePath('Application', undefined, name));
  }

  async listApplications(): Promise<Application[]> {
    return (await this.rest.request<{ items: Application[] }>('GET', resourcePath('Application', undefined))).items;
  }

  async listVersions(namespace: string): Promise<Version[]> {
    return (await this.rest.request<{ items: Version[] }>('GET', resourcePath('Version', namespace))).items;
  }

  createVersion(version: Version, options: WriteOptions = {}): Promise<Version> {
    return this.rest.request<Version>('POST', resourcePath('Version', version.metadata.namespace), { body: version, query: writeQuery(options) });
  }

  async listReleases(namespace: string): Promise<Release[]> {
    return (await this.rest.request<{ items: Release[] }>('GET', resourcePath('Release', namespace))).items;
  }

  getRelease(namespace: string, name: string): Promise<Release> {
    return this.rest.request<Release>('GET', resourcePath('Release', namespace, name));
  }

  createRelease(release: Release, options: WriteOptions = {}): Promise<Release> {
    return this.rest.request<Release>('POST', resourcePath('Release', release.metadata.namespace), { body: release, query: writeQuery(options) });
  }

  /** A JSON merge patch of a Release: only the fields it names change. */
  patchRelease(namespace: string, name: string, patch: unknown, options: WriteOptions = {}): Promise<Release> {
    return this.rest.request<Release>('PATCH', resourcePath('Release', namespace, name), { body: patch, contentType: MERGE_PATCH, query: writeQuery(options) });
  }
}

/** Where an application lives: its namespace, and the Application when the caller may read it. */
export interface AppTarget {
  app: string;
  namespace: string;
  /** Missing when the caller may not read cluster-scoped Applications (most members cannot). */
  application?: Application;
}

/**
 * The namespace of `app`: --namespace when given, otherwise the Application's; members who
 * may not read Applications fall back to the default, the Application's own name.
 */
export async function findApp(api: BerthApi, app: string, namespace: string | undefined): Promise<AppTarget> {
  let application: Application | undefined;
  try {
    application = await api.getApplication(app);
  } catch (error) {
    if (isStatus(error, 404)) {
      if (namespace) return { app, namespace };
      throw new PluginError(`there is no Application "${app}" (kubectl get applications.berth.dev lists them)`, EXIT.notFound);
    }
    if (!isStatus(error, 403)) throw error;
  }
  return { app, namespace: namespace ?? (application ? applicationNamespace(application) : app), ...(application ? { application } : {}) };
}

/** The Release that decides the split of the app's namespace (governingRelease), if any. */
export async function findRelease(api: BerthApi, target: AppTarget): Promise<Release | undefined> {
  return governingRelease(await api.listReleases(target.namespace));
}

/** As findRelease, for commands that drive an existing release. */
export async function requireRelease(api: BerthApi, target: AppTarget): Promise<Release> {
  const release = await findRelease(api, target);
  if (!release) {
    throw new PluginError(
      `there is no Release in namespace ${target.namespace} (application ${target.app}): deploy a Version first, e.g. kubectl berth deploy ${target.app} --image IMAGE`,
      EXIT.notFound,
    );
  }
  return release;
}
