import type { ReleasePhase } from '../../api/release.ts';
import type { Health } from './style.ts';

const PHASE_HEALTH: Record<ReleasePhase, Health> = { Progressing: 'progressing', Paused: 'paused', Promoted: 'ok', Aborted: 'failed', Manual: 'ok' };

/** How a Release in this phase is marked. */
export function phaseHealth(phase: string): Health {
  return PHASE_HEALTH[phase as ReleasePhase] ?? 'unknown';
}
