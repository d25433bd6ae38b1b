import { z } from 'zod';
import { omittedCount } from './bounds.ts';
import { conditions, type Resource } from './meta.ts';
import { cel, NAME_LIMITS, objectName, REQUEST_MATCH_LIMIT, requestMatch, text } from './rules.ts';

const versionName = text(objectName(NAME_LIMITS.Version));

/** Weights of a release are percentages of the application's requests. */
export const WEIGHT_RANGE = Object.freeze({ min: 0, max: 100 });
const percent = z.int().min(WEIGHT_RANGE.min).max(WEIGHT_RANGE.max);

/** The reasons a release pauses for; status.reason carries one of them while Paused. */
export const PAUSE_REASONS = ['PausedByPerson', 'WaitingForPromotion', 'PauseStep', 'InconclusiveAnalysis', 'VersionNotFound'] as const;
export type PauseReason = (typeof PAUSE_REASONS)[number];

/** Why a release was aborted; status.reason carries one of them while Aborted. */
export const ABORT_REASONS = ['AbortedByPerson', 'AnalysisFailed', 'ProgressDeadlineExceeded'] as const;
export type AbortReason = (typeof ABORT_REASONS)[number];

export const RELEASE_PHASES = ['Progressing', 'Paused', 'Promoted', 'Aborted', 'Manual'] as const;
export type ReleasePhase = (typeof RELEASE_PHASES)[number];

const analysis = cel(
  z.object({
    successRate: z.number().min(0).max(100).optional().describe('Lowest share of non-5xx answers, in percent, e.g. 99.'),
    p99Ms: z.int().min(1).max(600_000).optional().describe('Highest 99th percentile latency, in milliseconds.'),
    intervalSeconds: z.int().min(10).max(3600).default(30).describe('Length of one measurement window.'),
    count: z.int().min(1).max(100).default(3).describe('Measurements that must pass before the step is done.'),
    failureLimit: z.int().min(0).max(100).default(0).describe('Failed measurements tolerated; one more aborts the release.'),
    minRequests: z
      .int()
      .min(1)
      .max(10_000_000)
      .default(20)
      .describe('Requests the new Version must get in a window; with fewer, the window is inconclusive and the release pauses.'),
    compareWithStable: z
      .boolean()
      .default(false)
      .describe('Also fail a window in which the new Version does worse than the stable one measured in the same window.'),
  }),
  { rule: 'has(self.successRate) || has(self.p99Ms)', message: 'an analysis needs successRate, p99Ms or both' },
);
export type ReleaseAnalysis = z.infer<typeof analysis>;

const matches = z
  .array(requestMatch)
  .max(REQUEST_MATCH_LIMIT)
  .describe('Conditions a request must all meet, on headers or cookies, e.g. header X-Canary exactly "yes".');

const headerRoute = z.object({ match: matches.default([]) });

const step = cel(
  z.object({
    setWeight: percent.optional().describe('Send this percentage of requests to the new Version, the rest to the stable one.'),
    pause: z
      .object({ durationSeconds: z.int().min(1).max(604_800).optional().describe('How long; without it, until promoted.') })
      .optional()
      .describe('Wait for a while, or until a person promotes the release.'),
    analysis: analysis.optional().describe('Measure the new Version on the load balancers and abort the release when it fails.'),
    setHeaderRoute: headerRoute
      .optional()
      .describe('Send the requests that match to the new Version whatever its weight, until the release ends; an empty match list removes the route.'),
  }),
  {
    rule: '(has(self.setWeight) ? 1 : 0) + (has(self.pause) ? 1 : 0) + (has(self.analysis) ? 1 : 0) + (has(self.setHeaderRoute) ? 1 : 0) == 1',
    message: 'each step is exactly one of setWeight, pause, analysis or setHeaderRoute',
  },
);
export type ReleaseStep = z.infer<typeof step>;
export type HeaderRoute = NonNullable<ReleaseStatus['headerRoute']>;

const share = z.object({
  version: versionName.describe('Version name.'),
  weight: percent.describe('Percentage of requests.'),
});

export const releaseSpec = cel(
  z.object({
    version: versionName.describe('The Version to serve. Changing it starts a release from the stable Version to this one, through spec.steps.'),
    steps: z
      .array(step)
      .max(32)
      .default([])
      .describe('What happens between the stable and the new Version, in order; without steps a new Version gets all requests once Ready. The first release of an application skips them.'),
    progressDeadlineSeconds: z
      .int()
      .min(10)
      .max(86_400)
      .default(600)
      .describe('How long the new Version may take to become Ready before the release is aborted.'),
    retainSeconds: z
      .int()
      .min(0)
      .max(604_800)
      .default(3600)
      .describe('How long the previous Version keeps running after a promotion, ready for an instant rollback; then it is scaled to 0.'),
    paused: z.boolean().default(false).describe('Hold the release at its current step.'),
    abort: z.boolean().default(false).describe('Send every request back to the stable Version. Setting it back to false starts the release again.'),
    promote: cel(
      z.object({
        version: versionName.describe('The Version being released; a promotion of another Version does nothing.'),
        step: z.int().min(0).max(31).optional().describe('Every step up to this index counts as done.'),
        full: z.boolean().optional().describe('Skip the remaining steps: the Version gets all requests.'),
      }),
      { rule: 'has(self.step) != (has(self.full) && self.full)', message: 'promote gives either step or full: true' },
    )
      .optional()
      .describe('A person\'s go-ahead for the release of one Version: past pauses up to a step, or straight to the end.'),
    traffic: cel(
      z.array(share).min(1).max(16),
      { rule: 'self.all(t, self.exists_one(u, u.version == t.version))', message: 'each version may appear in traffic only once' },
      { rule: `self.map(t, t.weight).sum() == ${WEIGHT_RANGE.max}`, message: `traffic weights must add up to ${WEIGHT_RANGE.max}` },
    )
      .optional()
      .describe('A manual split across Versions, instead of the release: while set, steps do not run.'),
  }),
  {
    rule: '!has(self.promote) || !has(self.promote.step) || self.promote.step < size(self.steps)',
    message: 'promote.step must be the index of one of spec.steps',
    fieldPath: '.promote.step',
  },
);
export type ReleaseSpec = z.infer<typeof releaseSpec>;

const weights = z
  .array(z.object({ version: z.string().max(NAME_LIMITS.Version), weight: percent }))
  .max(16);
export type Weights = z.infer<typeof weights>;

export const measurement = z.object({
  step: z.int().min(0),
  startedAt: z.string().max(64),
  finishedAt: z.string().max(64),
  phase: z.enum(['Successful', 'Failed', 'Inconclusive']),
  requests: z.int().min(0),
  successRate: z.number().optional().describe('Non-5xx answers of the new Version in the window, in percent.'),
  p99Ms: z.number().optional(),
  stableSuccessRate: z.number().optional(),
  stableP99Ms: z.number().optional(),
  message: z.string().max(1024),
});
export type Measurement = z.infer<typeof measurement>;

export const releaseStatus = z.object({
  observedGeneration: z.int().min(0).optional(),
  phase: z.enum(RELEASE_PHASES).optional(),
  reason: z.string().max(64).optional().describe('Why the release is Paused or Aborted.'),
  message: z.string().max(1024).optional().describe('What is going on, in one sentence.'),
  stable: z.string().max(NAME_LIMITS.Version).optional().describe('The Version that serves when the release is not in progress.'),
  canary: z.string().max(NAME_LIMITS.Version).optional().describe('The Version being released.'),
  currentStep: z.int().min(0).optional().describe('Index of the step in progress; equal to the number of steps when all are done.'),
  startedAt: z.string().max(64).optional().describe('When the release of the canary started.'),
  stepStartedAt: z.string().max(64).optional(),
  weights: weights.optional().describe('The split the load balancers are told to apply.'),
  actualWeights: z
    .array(
      z.object({
        loadBalancer: z.string().max(NAME_LIMITS.LoadBalancer),
        pod: z.string().max(253),
        current: z.boolean().describe('Whether the instance holds the desired weights (status.weights), as read back from it.'),
        weights: z
          .array(
            z.object({
              version: z.string().max(NAME_LIMITS.Version),
              weight: percent.describe('Percentage of the requests the instance sends to the Version.'),
              endpoints: z.int().min(0).max(1_000_000).describe('Endpoints of the Version the instance picks from.'),
            }),
          )
          .max(16)
          .describe('The split the instance\'s balancer applies: a Version without ready endpoints gets 0, whatever its desired weight; empty when the instance did not answer.'),
      }),
    )
    .max(64)
    .optional()
    .describe('Per load-balancer instance, the split its balancer actually applies, read back from the instance\'s agent: desired (status.weights) against actual.'),
  actualWeightsOmitted: omittedCount('actualWeights'),
  headerRoute: z
    .object({ version: z.string().max(NAME_LIMITS.Version), match: matches })
    .optional()
    .describe('The header route in force: requests that match go to this Version whatever its weight.'),
  previews: z
    .array(z.object({ version: z.string().max(NAME_LIMITS.Version), url: z.string().max(512) }))
    .max(16)
    .optional()
    .describe('Preview hosts of the Versions: each reaches its Version alone.'),
  measurements: z.array(measurement).max(32).optional().describe('The analysis measurements of this release, newest last.'),
  retained: z
    .array(z.object({ version: z.string().max(NAME_LIMITS.Version), until: z.string().max(64) }))
    .max(16)
    .optional()
    .describe('Earlier Versions kept running for an instant rollback, and until when.'),
  conditions: conditions.optional(),
});
export type ReleaseStatus = z.infer<typeof releaseStatus>;

export type Release = Resource<ReleaseSpec, ReleaseStatus>;

/**
 * The Release that decides a namespace's split: the oldest one, the name breaking ties,
 * so that every reader agrees. Others are reported as ignored on their own status.
 */
export function governingRelease<T extends Release>(releases: readonly T[]): T | undefined {
  const created = (release: Release) => (release.metadata.creationTimestamp ? new Date(release.metadata.creationTimestamp).getTime() : 0);
  return [...releases]
    .filter((release) => !release.metadata.deletionTimestamp)
    .sort((a, b) => created(a) - created(b) || a.metadata.name.localeCompare(b.metadata.name))[0];
}
