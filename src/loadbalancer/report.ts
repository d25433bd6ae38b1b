import type { Application, ApplicationStatus } from '../api/application.ts';
import { placeholderCertificateReason, type LoadBalancer } from '../api/loadbalancer.ts';
import type { ConditionInput } from '../kit/conditions.ts';
import type { RoutingDecision } from './routing.ts';

/** One thing the Application's team must fix, as a Warning event reports it. */
export interface RouteProblem {
  reason: string;
  message: string;
}

export interface ApplicationRouteReport {
  routes: NonNullable<ApplicationStatus['routes']>;
  urls: string[];
  /** RoutesAccepted and TLSSecretsUsable. */
  conditions: ConditionInput[];
  problems: RouteProblem[];
}

function conditionOf(type: string, problems: RouteProblem[], healthy: Omit<ConditionInput, 'type'>): ConditionInput {
  if (problems.length === 0) return { type, ...healthy };
  return { type, status: 'False', reason: problems[0]!.reason, message: problems.map((p) => p.message).join('; ') };
}

/**
 * What the Application's status says about its routes: where it is served, each claim
 * that is not and why (RoutesAccepted), and each TLS Secret the load balancers serve a
 * placeholder for instead (TLSSecretsUsable). Pure.
 */
export function applicationRouteReport(app: Application, decision: RoutingDecision, loadBalancers: Iterable<LoadBalancer>): ApplicationRouteReport {
  const name = app.metadata.name;
  const report: ApplicationRouteReport = { routes: [], urls: [], conditions: [], problems: [] };
  const routeProblems: RouteProblem[] = [];
  for (const claim of decision.refused.filter((c) => c.application === name)) {
    report.routes.push({ host: claim.host, path: claim.path, loadBalancer: claim.loadBalancer, accepted: false, reason: claim.message });
    routeProblems.push({ reason: claim.reason, message: claim.message });
  }

  const byName = new Map([...loadBalancers].map((lb) => [lb.metadata.name, lb]));
  const tlsProblems: RouteProblem[] = [];
  for (const claim of decision.accepted.filter((c) => c.application === name)) {
    report.routes.push({ host: claim.host, path: claim.path, loadBalancer: claim.loadBalancer, accepted: true });
    report.urls.push(`${claim.tlsSecret ? 'https' : 'http'}://${claim.host}${claim.path}`);
    if (!claim.tlsSecret) continue;
    const entries = (byName.get(claim.loadBalancer)?.status?.instances ?? []).flatMap((i) => i.placeholderCertificates ?? []);
    const why = placeholderCertificateReason(entries, { namespace: claim.namespace, name: claim.tlsSecret });
    const message = `TLS Secret ${claim.tlsSecret} (spec.routes[${claim.route}].tls.secretName): ${why}; LoadBalancer ${claim.loadBalancer} serves ${claim.host} with a placeholder certificate until the Secret in namespace ${claim.namespace} holds a valid tls.crt and tls.key`;
    if (why !== undefined && !tlsProblems.some((p) => p.message === message)) tlsProblems.push({ reason: 'PlaceholderCertificateServed', message });
  }
  report.routes.sort((a, b) => `${a.host}${a.path}`.localeCompare(`${b.host}${b.path}`));

  report.conditions.push(
    conditionOf('RoutesAccepted', routeProblems, {
      status: 'True',
      reason: 'Accepted',
      message: report.urls.length > 0 ? `served at ${report.urls.join(', ')}` : 'no routes',
    }),
    conditionOf('TLSSecretsUsable', tlsProblems, { status: 'True', reason: 'AllUsable', message: 'every TLS Secret the routes name is served' }),
  );
  report.problems.push(...routeProblems, ...tlsProblems);
  return report;
}
