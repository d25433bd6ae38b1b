/**
 * How long ago, in one unit, at most four characters wide (`45s`, `12m`, `5h`, `3d`,
 * `2y`): enough to tell objects apart at a glance, and short enough for a column. Pure.
 */
export function age(since: string | Date | undefined, now: Date): string {
  if (since === undefined) return '';
  const seconds = Math.max(0, Math.floor((now.getTime() - new Date(since).getTime()) / 1000));
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 120) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours}h`;
  const days = Math.floor(hours / 24);
  return days < 730 ? `${days}d` : `${Math.floor(days / 365)}y`;
}
