import { describe, expect, it } from 'vitest';

import {
  diffLineKind,
  elapsed,
  extent,
  bestIndex,
  ema,
  formatAge,
  formatBytes,
  formatDuration,
  formatShortDuration,
  formatValue,
  lowerIsBetter,
  plural,
  linePath,
  seriesXs
} from '../src/format';

describe('chart geometry', () => {
  const box = { width: 100, height: 10, x: { min: 0, max: 2 }, y: { min: 0, max: 1 } };

  it('scales points into the box with y pointing up', () => {
    expect(linePath([0, 1, 2], [0, 0.5, 1], box)).toBe('M0.0,10.0L50.0,5.0L100.0,0.0');
  });

  it('breaks the line at a missing value instead of drawing to zero', () => {
    expect(linePath([0, 1, 2], [0, null, 1], box)).toBe('M0.0,10.0M100.0,0.0');
    expect(linePath([0, 1], [NaN, 1], { ...box, x: { min: 0, max: 1 } })).toBe('M100.0,0.0');
  });

  it('widens a flat extent and ignores non-numbers', () => {
    expect(extent([2, 2, null, NaN])).toEqual({ min: 1.9, max: 2.1 });
    expect(extent([null, undefined])).toBeNull();
    expect(extent([3, -1, 2])).toEqual({ min: -1, max: 3 });
  });

  it('uses positions where steps were not recorded', () => {
    expect(seriesXs([null, 5, null])).toEqual([0, 5, 2]);
  });
});

describe('formatting', () => {
  it('formats durations and sizes', () => {
    expect(formatDuration(0.25)).toBe('250 ms');
    expect(formatDuration(12.34)).toBe('12.3 s');
    expect(formatDuration(600)).toBe('10.0 min');
    expect(formatDuration(null)).toBe('');
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(3 * 1024 * 1024)).toBe('3.0 MiB');
  });

  it('shows recorded values as text, markup included', () => {
    expect(formatValue('<img src=x onerror=alert(1)>')).toBe('<img src=x onerror=alert(1)>');
    expect(formatValue(0.1 + 0.2)).toBe('0.3');
    expect(formatValue({ a: [1, 2] })).toBe('{"a":[1,2]}');
    expect(formatValue(null)).toBe('null');
    expect(formatValue(undefined)).toBe('—');
  });

  it('shows ages in at most four characters, for a narrow column', () => {
    expect(formatAge(100, 130_000)).toBe('30s');
    expect(formatAge(100, 100_000 + 7_200_000)).toBe('2h');
    expect(formatAge(0, 3 * 86_400_000)).toBe('3d');
    expect(formatAge(0, 20 * 86_400_000)).toBe('2w');
    expect(formatAge(0, 100 * 86_400_000)).toBe('3mo');
    expect(formatAge(0, 800 * 86_400_000)).toBe('2y');
    for (const days of [0.01, 1, 6, 29, 364, 5000]) {
      expect(formatAge(0, days * 86_400_000).length).toBeLessThanOrEqual(4);
    }
  });

  it('shows table durations in at most five characters', () => {
    expect(formatShortDuration(0.34)).toBe('340ms');
    expect(formatShortDuration(34.3)).toBe('34s');
    expect(formatShortDuration(312)).toBe('5.2m');
    expect(formatShortDuration(7560)).toBe('2.1h');
    expect(formatShortDuration(3 * 86400)).toBe('3.0d');
    expect(formatShortDuration(null)).toBe('');
  });

  it('counts in words', () => {
    expect(plural(1, 'run')).toBe('1 run');
    expect(plural(100000, 'run')).toBe('100,000 runs');
  });

  it('knows which metrics are better low and finds the best value', () => {
    expect(lowerIsBetter('val_loss')).toBe(true);
    expect(lowerIsBetter('test_error')).toBe(true);
    expect(lowerIsBetter('accuracy')).toBe(false);
    expect(bestIndex([0.3, null, 0.1, 'x', 0.2], true)).toBe(2);
    expect(bestIndex([0.3, NaN, 0.9], false)).toBe(2);
    expect(bestIndex([null, 'x'], false)).toBe(-1);
  });

  it('smooths with a debiased moving average and keeps gaps', () => {
    expect(ema([1, 2, 3], 0)).toEqual([1, 2, 3]);
    const smooth = ema([1, 1, 1, null, 1], 0.9) as number[];
    expect(smooth[0]).toBeCloseTo(1); // debiased: starts at the first value, not near 0
    expect(smooth[2]).toBeCloseTo(1);
    expect(smooth[3]).toBeNull();
    const step = ema([0, 10], 0.5) as number[];
    expect(step[1]).toBeGreaterThan(0);
    expect(step[1]).toBeLessThan(10);
  });

  it('counts a running run from its start', () => {
    expect(elapsed({ status: 'running', started_at: 100, duration_s: null }, 130_000)).toBe(30);
    expect(elapsed({ status: 'ok', started_at: 100, duration_s: 2 }, 130_000)).toBe(2);
  });

  it('classifies unified diff lines', () => {
    expect(['--- a', '+++ b', '@@ -1 +1 @@', '+x', '-y', ' z'].map(diffLineKind)).toEqual([
      'meta',
      'meta',
      'hunk',
      'add',
      'del',
      'context'
    ]);
  });
});
