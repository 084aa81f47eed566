import { describe, expect, it } from 'vitest';

import {
  diffLineKind,
  elapsed,
  extent,
  formatAge,
  formatBytes,
  formatDuration,
  formatValue,
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

  it('shows ages compactly', () => {
    expect(formatAge(100, 130_000)).toBe('30 s');
    expect(formatAge(100, 100_000 + 7_200_000)).toBe('2 h');
    expect(formatAge(0, 10 * 86_400_000)).toBe('1970-01-01');
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
