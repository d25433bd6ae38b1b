import { describe, expect, it } from 'vitest';
import { waitFor } from '../support/wait.ts';

describe('waitFor', () => {
  it('returns the first truthy value the probe yields', async () => {
    let calls = 0;
    const value = await waitFor(() => (++calls >= 3 ? { calls } : undefined), {
      description: 'three calls',
      intervalMs: 1,
    });
    expect(value).toEqual({ calls: 3 });
  });

  it('treats a throwing probe as not yet and reports its last error on timeout', async () => {
    const attempt = waitFor(
      () => {
        throw new Error('pod has no IP');
      },
      { description: 'a pod IP', timeoutMs: 30, intervalMs: 5 },
    );
    await expect(attempt).rejects.toThrow(/timed out after 30 ms waiting for a pod IP; last error: pod has no IP/);
  });

  it('keeps polling while the probe returns false', async () => {
    const started = Date.now();
    await expect(waitFor(() => false, { description: 'never', timeoutMs: 50, intervalMs: 5 })).rejects.toThrow(
      /waiting for never$/,
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(50);
  });
});
