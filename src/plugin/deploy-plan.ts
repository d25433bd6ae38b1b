import { API_VERSION } from '../api/meta.ts';
import type { Release } from '../api/release.ts';
import { versionSpec, type Version, type VersionSpec } from '../api/version.ts';
import { EXIT, PluginError, UsageError } from './errors.ts';
import { checkVersionName } from './weights.ts';

const NUMBERED = /^v(\d+)$/;

/** The Version created last (the name breaks ties): what a new one is pre-filled from. */
export function newestVersion(versions: readonly Version[]): Version | undefined {
  const created = (version: Version) => new Date(version.metadata.creationTimestamp ?? 0).getTime();
  return [...versions].sort((a, b) => created(b) - created(a) || b.metadata.name.localeCompare(a.metadata.name))[0];
}

/** `v<N+1>` after the highest `v<N>` among the names (v1 when there is none). */
export function nextVersionName(names: readonly string[]): string {
  const numbers = names.map((name) => NUMBERED.exec(name)?.[1]).filter((n) => n !== undefined).map(Number);
  return `v${Math.max(0, ...numbers) + 1}`;
}

/** The repository part of an image reference: everything before its tag or digest. */
export function imageRepository(image: string): string {
  const withoutDigest = image.split('@')[0]!;
  const lastSlash = withoutDigest.lastIndexOf('/');
  const colon = withoutDigest.lastIndexOf(':');
  return colon > lastSlash ? withoutDigest.slice(0, colon) : withoutDigest;
}

/** `--image`: a full reference, or `:TAG` for a new tag of the newest Version's image. */
export function resolveImage(requested: string, newest: Version | undefined): string {
  if (!requested.startsWith(':')) return requested;
  if (!newest) throw new UsageError(`--image ${requested} names only a tag, and the application has no Version whose image it could go with`, 'deploy');
  return `${imageRepository(newest.spec.image)}${requested}`;
}

export interface DeployPlan {
  version: Version;
  /** The Version it was pre-filled from, if any. */
  from?: string;
}

/**
 * The new Version: the newest one's spec (resources and tier, health check, env, command,
 * replicas, autoscaling) with the new image, under the next name. Checked against the
 * Version schema, whose messages name the field.
 */
export function planVersion(options: { namespace: string; image: string; name?: string; env?: readonly string[]; versions: readonly Version[] }): DeployPlan {
  const newest = newestVersion(options.versions);
  const taken = options.versions.map((version) => version.metadata.name);
  const name = options.name ? checkVersionName(options.name, '--name', 'deploy') : nextVersionName(taken);
  if (taken.includes(name)) throw new PluginError(`Version ${name} already exists in namespace ${options.namespace}: pick another --name`, EXIT.failure);
  const env = withEnv(newest?.spec.env ?? [], options.env ?? []);
  const parsed = versionSpec.safeParse({ ...(newest?.spec ?? {}), image: resolveImage(options.image, newest), ...(env.length > 0 ? { env } : {}) });
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `spec.${issue.path.join('.')} ${issue.message}`);
    throw new UsageError(`the new Version would be invalid: ${problems.join('; ')}`, 'deploy');
  }
  const version: Version = {
    apiVersion: API_VERSION,
    kind: 'Version',
    metadata: { name, namespace: options.namespace },
    spec: parsed.data satisfies VersionSpec,
  };
  return { version, ...(newest ? { from: newest.metadata.name } : {}) };
}

/** The environment with `NAME=VALUE` settings applied: a name already there gets the new value, in its place. */
export function withEnv(env: NonNullable<VersionSpec['env']>, settings: readonly string[]): NonNullable<VersionSpec['env']> {
  const result = env.map((variable) => ({ ...variable }));
  for (const setting of settings) {
    const equals = setting.indexOf('=');
    if (equals < 1) throw new UsageError(`--env takes NAME=VALUE, not "${setting}"`, 'deploy');
    const [name, value] = [setting.slice(0, equals), setting.slice(equals + 1)];
    const existing = result.find((variable) => variable.name === name);
    if (existing) existing.value = value;
    else result.push({ name, value });
  }
  return result;
}

/** The Release of an application's first deployment: named after the application, no steps. */
export function firstRelease(app: string, namespace: string, version: string): Release {
  return { apiVersion: API_VERSION, kind: 'Release', metadata: { name: app, namespace }, spec: { version } as Release['spec'] };
}
