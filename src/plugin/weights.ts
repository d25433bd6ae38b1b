import { WEIGHT_RANGE, type Weights } from '../api/release.ts';
import { holds, NAME_LIMITS, objectName } from '../api/rules.ts';
import { UsageError } from './errors.ts';

const VERSION_NAME = objectName(NAME_LIMITS.Version);

/** A Version name as the Version schema takes it, or a usage error saying what one is. */
export function checkVersionName(name: string, what: string, command: string): string {
  if (!holds(VERSION_NAME, name)) throw new UsageError(`${what} "${name}" is not a Version name: it must be ${VERSION_NAME.is}`, command);
  return name;
}

/**
 * `v1=90 v2=10` as a split across Versions. Checked here so a typo fails before anything
 * is sent; the API server checks the same rules (src/api/release.ts) and stays the judge.
 * Weights are percentages of the requests, so they add up to the largest one allowed.
 */
export function parseWeights(args: readonly string[], command = 'traffic'): Weights {
  if (args.length === 0) throw new UsageError('give the split as VERSION=PERCENT pairs, e.g. v1=90 v2=10', command);
  const weights = args.map((arg) => {
    const match = /^([^=]+)=(\d+)%?$/.exec(arg);
    if (!match) throw new UsageError(`"${arg}" is not VERSION=PERCENT, e.g. v2=10`, command);
    const weight = Number(match[2]);
    if (weight < WEIGHT_RANGE.min || weight > WEIGHT_RANGE.max) {
      throw new UsageError(`the weight of ${match[1]} must be between ${WEIGHT_RANGE.min} and ${WEIGHT_RANGE.max}, not ${weight}`, command);
    }
    return { version: checkVersionName(match[1]!, 'version', command), weight };
  });
  const repeated = weights.find((share, index) => weights.findIndex((other) => other.version === share.version) !== index);
  if (repeated) throw new UsageError(`${repeated.version} appears twice in the split`, command);
  const total = weights.reduce((sum, share) => sum + share.weight, 0);
  if (total !== WEIGHT_RANGE.max) throw new UsageError(`the weights add up to ${total}, not ${WEIGHT_RANGE.max}`, command);
  return weights;
}

/** `90s`, `5m`, `1h` or plain seconds, as a number of milliseconds. */
export function parseDuration(text: string, option: string, command: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text);
  if (!match) throw new UsageError(`--${option} must be a duration such as 90s, 5m or 1h, not "${text}"`, command);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(match[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  return Number(match[1]) * unit;
}
