import { createHash } from 'node:crypto';
import { ListWatch, Watch, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import { errorMessage, type Logger } from './log.ts';
import { canonicalJson } from './status.ts';

export type ChangeHandler<T> = (object: T, event: 'add' | 'update' | 'delete') => void;

export interface InformerOptions<T extends KubernetesObject> {
  /** Name for logs, e.g. "versions". */
  name: string;
  /** API path to watch, e.g. /apis/apps/v1/deployments. */
  path: string;
  list: () => Promise<KubernetesListObject<T>>;
  labelSelector?: string;
  /** e.g. metadata.name=x: RBAC grants on resourceNames allow list/watch only with it. `list` must apply it too. */
  fieldSelector?: string;
  logger: Logger;
  /**
   * For kinds the operator writes but whose status it never reads (a quota's usage changes
   * with every pod): status is dropped, and an update reaches the handlers only when
   * something besides status changed.
   */
  ignoreStatus?: boolean;
  /**
   * Strips, in place, what no reader of this cache needs from an object it has just
   * stored (controller-runtime's cache transforms): the cache keeps every object of its
   * kind for as long as it exists, so an unread pod spec costs memory times the pods.
   */
  transform?: (object: T) => void;
}

/**
 * Drops metadata.managedFields from an object the cache has just stored (the cache keeps
 * this very object): server-side apply's field ownership, often the largest part of an
 * object, is read by nothing here and would otherwise stay in memory for every object.
 */
function withoutManagedFields<T extends KubernetesObject>(object: T): T {
  if (object.metadata?.managedFields) delete object.metadata.managedFields;
  return object;
}

const RESTART_BASE_MS = 500;
const RESTART_MAX_MS = 30_000;

/**
 * The wait before restart number `failures` (1 for the first): doubling up to the cap,
 * the upper half of it at random ("equal jitter"), so that every agent and the operator,
 * failing together, do not retry together, and no wait is shorter than the one before.
 */
export function restartDelay(failures: number, random = Math.random()): number {
  const ceiling = Math.min(RESTART_BASE_MS * 2 ** (failures - 1), RESTART_MAX_MS);
  return Math.round(ceiling / 2 + (ceiling / 2) * random);
}

/**
 * A cache of one kind of object kept current by list+watch. client-node's informer
 * stops on any error except 410 (which relists); this one restarts itself with a growing
 * backoff, so a restarted or briefly unreachable API server only delays events.
 *
 * It counts as synced only once a list has succeeded: before that, an empty cache means
 * "not read yet", and whoever acts on it (renders, prunes, pushes) must wait. The backoff
 * returns to its start only after a list (when one was needed) and the watch succeeded.
 */
export class Informer<T extends KubernetesObject> {
  private readonly inner;
  private readonly handlers: ChangeHandler<T>[] = [];
  /** With ignoreStatus: a hash of each object (by uid) without its status. */
  private readonly fingerprints = new Map<string, string>();
  /** Failed attempts since the last one that listed and watched. */
  private failures = 0;
  /** Whether the attempt under way has failed (its list or its watch). */
  private attemptFailed = false;
  private listed = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private syncedResolve!: () => void;
  readonly synced: Promise<void>;
  private hasSynced = false;

  private readonly options: InformerOptions<T>;

  constructor(kc: KubeConfig, options: InformerOptions<T>) {
    this.options = options;
    const list = async () => {
      const listed = await options.list();
      this.listed = true;
      return listed;
    };
    this.inner = new ListWatch<T>(options.path, new Watch(kc), list, false, options.labelSelector, options.fieldSelector);
    this.synced = new Promise((resolve) => (this.syncedResolve = resolve));
    this.inner.on('add', (object) => this.emitChange(object, 'add'));
    this.inner.on('update', (object) => this.emitChange(object, 'update'));
    this.inner.on('delete', (object) => {
      this.fingerprints.delete(object.metadata?.uid ?? '');
      this.emit(object, 'delete');
    });
    this.inner.on('error', (error) => this.restartAfterError(error));
  }

  onChange(handler: ChangeHandler<T>): void {
    this.handlers.push(handler);
  }

  get isSynced(): boolean {
    return this.hasSynced;
  }

  get(name: string, namespace?: string): T | undefined {
    return this.inner.get(name, namespace);
  }

  list(namespace?: string): ReadonlyArray<T> {
    return this.inner.list(namespace);
  }

  /** One attempt to list (unless the cache is current) and watch; failures restart it later. */
  async start(): Promise<void> {
    this.stopped = false;
    this.attemptFailed = false;
    try {
      // client-node reports a failed list or watch as an 'error' event and resolves.
      await this.inner.start();
    } catch (error) {
      this.restartAfterError(error);
    }
    // The list fills the cache before start resolves.
    if (this.listed) this.markSynced();
    if (!this.attemptFailed) this.failures = 0;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    await this.inner.stop();
  }

  private markSynced(): void {
    if (this.hasSynced) return;
    this.hasSynced = true;
    this.syncedResolve();
  }

  /** Whether an object differs from when it was last seen, besides status and bookkeeping. */
  private changedBeyondStatus(object: T): boolean {
    // Listed items come without apiVersion and kind and with creationTimestamp as a Date,
    // watched ones as the API server sent them; none of the three ever changes.
    const { apiVersion: _apiVersion, kind: _kind, ...content } = object;
    const { resourceVersion: _version, generation: _generation, creationTimestamp: _created, ...metadata } = object.metadata ?? {};
    const fingerprint = createHash('sha256').update(canonicalJson({ ...content, metadata })).digest('base64');
    const uid = object.metadata?.uid ?? '';
    if (this.fingerprints.get(uid) === fingerprint) return false;
    this.fingerprints.set(uid, fingerprint);
    return true;
  }

  private emitChange(object: T, event: 'add' | 'update'): void {
    withoutManagedFields(object);
    this.options.transform?.(object);
    if (this.options.ignoreStatus) {
      delete (object as { status?: unknown }).status;
      if (!this.changedBeyondStatus(object)) return;
    }
    this.emit(object, event);
  }

  private emit(object: T, event: 'add' | 'update' | 'delete'): void {
    for (const handler of this.handlers) handler(object, event);
  }

  private restartAfterError(error: unknown): void {
    this.attemptFailed = true;
    if (this.stopped || this.restartTimer) return;
    this.failures += 1;
    const delay = restartDelay(this.failures);
    this.options.logger.warn(
      { informer: this.options.name, retryInMs: delay, err: errorMessage(error) },
      'watch failed; restarting',
    );
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (!this.stopped) void this.start();
    }, delay);
  }
}
