import type { NginxModel } from '../../src/nginx/model.ts';

/** An Application routes at most this many hosts: a LoadBalancer of N hosts serves about N/64 of them. */
export const HOSTS_PER_APPLICATION = 64;

export function manyHostsName(i: number): string {
  return `h${i}.scale.test`;
}

/**
 * The model of a LoadBalancer serving `hosts` hosts, as the operator builds it for
 * applications of 64 hosts each: one backend per application, every backend routed to
 * `service` (one set of stand-in pods answers for all of them).
 */
export function manyHostsModel(hosts: number, service: { namespace: string; name: string; port: string }, ports: { http: number; https: number }): NginxModel {
  const applications = Math.ceil(hosts / HOSTS_PER_APPLICATION);
  return {
    settings: { workerProcesses: 1 },
    ports,
    servers: Array.from({ length: hosts }, (_, i) => ({
      host: manyHostsName(i),
      locations: [{ pathPrefix: '/', backend: `app-${i % applications}.http` }],
    })),
    backends: Array.from({ length: applications }, (_, a) => ({ name: `app-${a}.http`, groups: [{ name: 'v1', service }] })),
  };
}
