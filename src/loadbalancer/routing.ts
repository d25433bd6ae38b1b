import { createHash } from 'node:crypto';
import type { Application } from '../api/application.ts';
import { governingRelease } from '../api/release.ts';
import type { LoadBalancer } from '../api/loadbalancer.ts';
import type { Caches } from '../caches.ts';
import type { OperatorConfig } from '../config.ts';
import { describeLabelSelector, matchesLabelSelector } from '../kit/selector.ts';
import { RenderError, renderNginxConfig } from '../nginx/render.ts';
import { loadBalancerModel } from './model.ts';
import { byAge, claimField, claimsOf, HostOwnership, type ReleaseTraffic, type RouteClaim } from './routes.ts';

/** Why a claim is not served; each is the Application's own to fix. */
export type RefusalReason = 'LoadBalancerNotFound' | 'NotAllowedOnLoadBalancer' | 'HostOwnedByOther' | 'PortNotFound' | 'InvalidRoute' | 'PathTaken';

export interface RefusedClaim extends RouteClaim {
  reason: RefusalReason;
  /** Names the field and the fix. */
  message: string;
}

export interface RoutingDecision {
  accepted: RouteClaim[];
  refused: RefusedClaim[];
  /**
   * LoadBalancers whose own settings do not render even without any route, with why.
   * They keep serving their last good config; no Application is blamed.
   */
  unrenderable: Map<string, string>;
}

export interface RoutingInput {
  applications: Iterable<Application>;
  loadBalancers: Iterable<LoadBalancer>;
  versionsOf: (namespace: string) => readonly string[];
  config: OperatorConfig;
}

/** Whether a LoadBalancer's spec.allowedApplications lets this Application attach. */
export function admits(lb: LoadBalancer, app: Application): boolean {
  const allowed = lb.spec.allowedApplications;
  if (!allowed) return true;
  if (allowed.environments && !allowed.environments.includes(app.spec.environment)) return false;
  return !allowed.selector || matchesLabelSelector(allowed.selector, app.metadata.labels);
}

/** Why a LoadBalancer does not admit an Application, for the Application's owners. */
export function notAdmittedMessage(lb: LoadBalancer): string {
  const { environments, selector } = lb.spec.allowedApplications ?? {};
  const parts = [
    ...(environments ? [`environment ${environments.join(' or ')}`] : []),
    ...(selector ? [`labels matching ${describeLabelSelector(selector)}`] : []),
  ];
  return `LoadBalancer ${lb.metadata.name} only serves Applications with ${parts.join(' and ')}; use another LoadBalancer or ask the platform team`;
}

// Which spec field a renderer complaint about a one-claim model points at.
const SPEC_FIELDS: ReadonlyArray<[RegExp, (claim: RouteClaim, app: Application) => string]> = [
  [/^servers\[0\]\.host/, (c) => `spec.routes[${c.route}].host`],
  [/^servers\[0\]\.tls/, (c) => `spec.routes[${c.route}].tls.secretName`],
  [/^servers\[0\]\.locations\[0\]\.pathPrefix/, (c, app) => `spec.routes[${c.route}].paths[${app.spec.routes[c.route]!.paths.indexOf(c.path)}]`],
  [/^backends\[0\]\.sticky\.maxAgeSeconds/, (c) => `spec.routes[${c.route}].sticky.maxAgeSeconds`],
  [/^backends\[0\]\.groups/, (c) => `the Versions in namespace ${c.namespace}`],
  [/^backends\[0\]/, (c) => `spec.routes[${c.route}].port`],
];

const RENDER_CHECK_LIMIT = 50_000;
/** Renderer verdicts by a digest of the one-claim model's JSON (the JSON itself would hold kilobytes per claim); the same claim is never rendered twice. */
const renderVerdicts = new Map<string, string | undefined>();

/**
 * Renders the claim alone with the LoadBalancer's settings: the renderer is the one place
 * its rules live. Returns the renderer's complaint, or undefined when the claim renders.
 */
function renderProblem(lb: LoadBalancer, claim: RouteClaim, app: Application, input: RoutingInput): string | undefined {
  const alone = { ...lb, spec: { ...lb.spec, streams: [] } };
  const model = loadBalancerModel(alone, [claim], new Map([[app.metadata.name, app]]), input.versionsOf, input.config);
  const key = createHash('sha256').update(JSON.stringify(model)).digest('base64');
  if (renderVerdicts.has(key)) return renderVerdicts.get(key);
  let verdict: string | undefined;
  try {
    renderNginxConfig(model);
  } catch (error) {
    if (!(error instanceof RenderError)) throw error;
    const field = SPEC_FIELDS.find(([pattern]) => pattern.test(error.field))?.[1](claim, app) ?? error.field;
    verdict = `${field}: ${error.message.slice(error.field.length + 2)}; LoadBalancer ${claim.loadBalancer} cannot serve it until that is fixed`;
  }
  if (renderVerdicts.size >= RENDER_CHECK_LIMIT) renderVerdicts.clear();
  renderVerdicts.set(key, verdict);
  return verdict;
}

/** Why the LoadBalancer's own settings and streams do not render, or undefined. */
function settingsProblem(lb: LoadBalancer, input: RoutingInput): string | undefined {
  try {
    renderNginxConfig(loadBalancerModel(lb, [], new Map(), input.versionsOf, input.config));
    return undefined;
  } catch (error) {
    if (!(error instanceof RenderError)) throw error;
    return error.message;
  }
}

/**
 * Decides, for every LoadBalancer at once, which claims are served and why the others
 * are not. Claims are taken oldest Application first; a claim is refused when its
 * LoadBalancer does not admit the Application, when its host belongs to another
 * Application that did not delegate it, when its LoadBalancer does not exist, when its
 * port is not one of the Application's, when the renderer refuses it on its own, or when
 * an older claim serves the same host + path. A refused claim never changes what others
 * get; one the owner got wrong (from the LoadBalancer's name on) keeps its host with the
 * owner, so a mistake never hands a host over. Applications being deleted claim nothing.
 * Both the LoadBalancer and the Application reconcilers act on this one decision. Pure.
 */
export function decideRouting(input: RoutingInput): RoutingDecision {
  const loadBalancers = new Map([...input.loadBalancers].map((lb) => [lb.metadata.name, lb]));
  const decision: RoutingDecision = { accepted: [], refused: [], unrenderable: new Map() };
  for (const lb of loadBalancers.values()) {
    const problem = settingsProblem(lb, input);
    if (problem) decision.unrenderable.set(lb.metadata.name, problem);
  }
  const ownership = new HostOwnership();
  const served = new Map<string, string>();
  const live = [...input.applications].filter((app) => !app.metadata.deletionTimestamp).sort(byAge);
  for (const app of live) {
    for (const claim of claimsOf(app)) {
      const refuse = (reason: RefusalReason, message: string) => decision.refused.push({ ...claim, reason, message: `${claimField(claim)}: ${message}` });
      const lb = loadBalancers.get(claim.loadBalancer);
      // A LoadBalancer that turns the Application away leaves it no claim to any host.
      if (lb && !admits(lb, app)) {
        refuse('NotAllowedOnLoadBalancer', notAdmittedMessage(lb));
        continue;
      }
      const owned = ownership.claim(app, claim);
      if (!owned.owned) {
        refuse('HostOwnedByOther', owned.message);
        continue;
      }
      if (!lb) {
        refuse('LoadBalancerNotFound', `LoadBalancer ${claim.loadBalancer} does not exist; fix spec.routes[${claim.route}].loadBalancer`);
        continue;
      }
      if (!app.spec.ports.some((port) => port.name === claim.port)) {
        refuse('PortNotFound', `spec.routes[${claim.route}].port ${claim.port} is not one of spec.ports (${app.spec.ports.map((p) => p.name).join(', ')}); name one of them`);
        continue;
      }
      const problem = decision.unrenderable.has(lb.metadata.name) ? undefined : renderProblem(lb, claim, app, input);
      if (problem) {
        refuse('InvalidRoute', problem);
        continue;
      }
      const key = `${claim.loadBalancer}\u0000${claim.host}\u0000${claim.path}`;
      const holder = served.get(key);
      if (holder !== undefined) {
        refuse('PathTaken', `${claim.host}${claim.path} on LoadBalancer ${claim.loadBalancer} is already served by Application ${holder}, which claimed it first`);
        continue;
      }
      served.set(key, claim.application);
      decision.accepted.push(claim);
    }
  }
  return decision;
}

/** The Versions of a namespace that are not being deleted, as the caches hold them. */
export function liveVersionsOf(caches: Caches): (namespace: string) => string[] {
  return (namespace) => caches.versions.list(namespace).filter((v) => !v.metadata.deletionTimestamp).map((v) => v.metadata.name);
}

/** What the namespace's Release tells the load balancers, as the caches hold it; undefined without a Release. */
export function releaseTrafficOf(caches: Caches): (namespace: string) => ReleaseTraffic | undefined {
  // Only what the load balancers render: the rest of the status (the instances' split read
  // back, measurements) changes far more often and must not look like a change of traffic.
  return (namespace) => {
    const status = governingRelease(caches.releases.list(namespace))?.status;
    return status && { weights: status.weights, headerRoute: status.headerRoute, retained: status.retained };
  };
}

let lastRouting: { inputs: string; config: OperatorConfig; decision: RoutingDecision } | undefined;

/**
 * The decision for what the operator's caches hold now. One change fans out to every
 * Application with routes and every LoadBalancer, and each asks for the decision: it is
 * made once per state of what it reads (specs by generation, Application labels,
 * deletions, the Versions that exist), not once per reconcile.
 */
export function currentRouting(caches: Caches, config: OperatorConfig): RoutingDecision {
  const applications = caches.applications.list();
  const loadBalancers = caches.loadBalancers.list();
  const inputs = [
    ...applications.map((a) => `a ${a.metadata.uid} ${a.metadata.generation} ${a.metadata.deletionTimestamp ? 'deleting' : ''} ${JSON.stringify(a.metadata.labels ?? {})}`),
    ...loadBalancers.map((lb) => `l ${lb.metadata.uid} ${lb.metadata.generation}`),
    ...caches.versions.list().filter((v) => !v.metadata.deletionTimestamp).map((v) => `v ${v.metadata.namespace}/${v.metadata.name}`),
  ].join('\n');
  if (lastRouting?.inputs !== inputs || lastRouting.config !== config) {
    lastRouting = { inputs, config, decision: decideRouting({ applications, loadBalancers, versionsOf: liveVersionsOf(caches), config }) };
  }
  return lastRouting.decision;
}
