import type { OperatorConfig } from '../config.ts';
import type { VersionSpec } from '../api/version.ts';

export interface Amounts {
  cpu?: string;
  memory?: string;
}
export interface EffectiveResources {
  requests?: Amounts;
  limits?: Amounts;
}
export type QosClass = 'Guaranteed' | 'Burstable' | 'BestEffort';

const DECIMAL: Record<string, number> = { n: 1e-9, u: 1e-6, m: 1e-3, '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18 };
const BINARY: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };
const MI = 2 ** 20;

/** The value of a Kubernetes quantity in base units (cores, bytes). */
export function parseQuantity(quantity: string): number {
  const match = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(.*)$/.exec(quantity);
  if (!match) throw new Error(`not a quantity: ${quantity}`);
  const value = Number(match[1]);
  const suffix = match[2] ?? '';
  if (suffix in BINARY) return value * BINARY[suffix]!;
  if (suffix in DECIMAL) return value * DECIMAL[suffix]!;
  const exponent = /^[eE]([+-]?\d+)$/.exec(suffix);
  if (exponent) return value * 10 ** Number(exponent[1]);
  throw new Error(`not a quantity: ${quantity}`);
}

function formatCpu(cores: number): string {
  const millis = Math.ceil(cores * 1000 - 1e-9);
  return millis % 1000 === 0 ? String(millis / 1000) : `${millis}m`;
}

function formatMemory(bytes: number): string {
  if (bytes >= MI) return `${Math.ceil(bytes / MI - 1e-9)}Mi`;
  return String(Math.ceil(bytes));
}

/**
 * The request for a limit under an overcommit ratio. Rounding up to whole millicores or
 * Mi must never lift a request above its limit (the API server refuses such pods), and
 * 1/1 must stay exactly equal for Guaranteed QoS.
 */
function overcommitted(limit: string, ratio: number, format: (amount: number) => string): string {
  if (ratio === 1) return limit;
  const request = format(parseQuantity(limit) / ratio);
  return parseQuantity(request) > parseQuantity(limit) ? limit : request;
}

/**
 * Requests and limits of a Version's container. With cpu/memory and a tier, cpu/memory
 * are the limits and the tier's overcommit ratios give the requests (critical 1/1 →
 * Guaranteed; standard, low, batch → Burstable). Explicit requests/limits are taken as
 * they are. Neither: the operator's default size with the tier.
 */
export function effectiveResources(spec: VersionSpec['resources'], config: OperatorConfig): EffectiveResources {
  if (spec.requests || spec.limits) {
    return { ...(spec.requests ? { requests: spec.requests } : {}), ...(spec.limits ? { limits: spec.limits } : {}) };
  }
  const cpu = spec.cpu ?? config.defaultResources.cpu;
  const memory = spec.memory ?? config.defaultResources.memory;
  const tier = config.tiers[spec.tier];
  return {
    requests: {
      cpu: overcommitted(cpu, tier.cpuOvercommit, formatCpu),
      memory: overcommitted(memory, tier.memoryOvercommit, formatMemory),
    },
    limits: { cpu, memory },
  };
}

function same(a: string | undefined, b: string | undefined): boolean {
  return a !== undefined && b !== undefined && parseQuantity(a) === parseQuantity(b);
}

/** The QoS class Kubernetes gives a pod whose one container has these resources. */
export function qosClass(resources: EffectiveResources): QosClass {
  const { requests = {}, limits = {} } = resources;
  if (!requests.cpu && !requests.memory && !limits.cpu && !limits.memory) return 'BestEffort';
  const cpuRequest = requests.cpu ?? limits.cpu;
  const memoryRequest = requests.memory ?? limits.memory;
  if (limits.cpu && limits.memory && same(cpuRequest, limits.cpu) && same(memoryRequest, limits.memory)) return 'Guaranteed';
  return 'Burstable';
}
