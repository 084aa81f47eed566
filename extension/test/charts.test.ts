import { describe, expect, it } from 'vitest';

import { IRunSummary, ISeries } from '../src/api';
import {
  axesFor,
  barsOption,
  brushedRuns,
  coordinate,
  curvesOption,
  curveXs,
  escapeHtml,
  parallelOption,
  scatterOption
} from '../src/charts/options';

const theme = { text: '#000', muted: '#666', grid: '#ddd' };

function run(i: number, params: Record<string, unknown>, accuracy?: number): IRunSummary {
  return { id: `r${i}`, name: `<b>run ${i}</b>`, params, metrics: accuracy === undefined ? {} : { accuracy } } as IRunSummary;
}

const runs = [
  run(0, { lr: 0.1, model: 'vit', bn: true }, 0.9),
  run(1, { lr: 0.001, model: 'resnet', bn: false }, 0.7),
  run(2, { lr: 0.01, model: 'vit' }, 0.8),
  run(3, { lr: 0.01, model: 'mlp' })
];
const columns = [
  { source: 'param' as const, key: 'lr' },
  { source: 'param' as const, key: 'model' },
  { source: 'param' as const, key: 'absent' },
  { source: 'metric' as const, key: 'accuracy' }
];

describe('parallel coordinates', () => {
  it('makes a log axis for a parameter spanning decades, categories for text, and skips empty columns', () => {
    const axes = axesFor(runs, columns);
    expect(axes.map(a => [a.name, a.type])).toEqual([
      ['lr', 'log'],
      ['model', 'category'],
      ['accuracy', 'value']
    ]);
    expect(axes[1].categories).toEqual(['mlp', 'resnet', 'vit']);
    expect(coordinate(runs[3], axes[2])).toBe('-'); // no metric: a gap, not a zero
  });

  it('draws one line per run coloured by the metric, in one frame', () => {
    const axes = axesFor(runs, columns);
    const option = parallelOption(runs, axes, theme) as {
      series: { data: unknown[][]; progressive: number }[];
      visualMap: { dimension: number; min: number; max: number };
      parallelAxis: { id: string }[];
    };
    expect(option.series[0].data).toHaveLength(4);
    expect(option.series[0].data[0]).toEqual([0.1, 'vit', 0.9]);
    expect(option.visualMap).toMatchObject({ dimension: 2, min: 0.7, max: 0.9 });
    expect(option.series[0].progressive).toBe(0);
    expect(option.parallelAxis.map(a => a.id)).toEqual(['axis-0', 'axis-1', 'axis-2']);
  });

  it('keeps the runs inside every brushed range', () => {
    const axes = axesFor(runs, columns);
    expect(brushedRuns(runs, axes, new Map([[0, [[0.005, 0.2]]]])).map(r => r.id)).toEqual(['r0', 'r2', 'r3']);
    const both = new Map([
      [0, [[0.005, 0.2]]],
      [1, [[2, 2]]] // category index 2: vit
    ]);
    expect(brushedRuns(runs, axes, both).map(r => r.id)).toEqual(['r0', 'r2']);
    expect(brushedRuns(runs, axes, new Map([[2, [[0.85, 1]]]])).map(r => r.id)).toEqual(['r0']);
  });
});

describe('scatter, curves and bars', () => {
  it('plots a parameter against a metric and escapes run names in tooltips', () => {
    const axis = axesFor(runs, [columns[0]])[0];
    const option = scatterOption(runs, axis, columns[3], new Set(['r0']), theme, r => r.name ?? '') as {
      series: { data: { value: unknown[]; name: string; itemStyle: { color: string } }[] }[];
      tooltip: { formatter: (p: { dataIndex: number }) => string };
    };
    const data = option.series[0].data;
    expect(data.map(d => d.name)).toEqual(['r0', 'r1', 'r2']); // r3 has no accuracy
    expect(data[1].itemStyle.color).not.toBe(data[0].itemStyle.color); // outside the brush: greyed
    const tip = option.tooltip.formatter({ dataIndex: 0 });
    expect(tip).toContain('&#60;b&#62;run 0&#60;/b&#62;');
    expect(tip).not.toContain('<b>');
  });

  it('overlays curves, smoothed over faded raw values, by step or time', () => {
    const series: ISeries = { steps: [0, 1, 2, 3], values: [4, 2, 1, 0.5], timestamps: [100, 101, 103, 110] };
    expect(curveXs(series, 'step')).toEqual([0, 1, 2, 3]);
    expect(curveXs(series, 'time')).toEqual([0, 1, 3, 10]);
    const plain = curvesOption('loss', [series, null], ['a', 'b'], { smoothing: 0, logY: false, x: 'step' }, theme) as {
      series: { data: number[][] }[];
    };
    expect(plain.series).toHaveLength(1);
    const smooth = curvesOption('loss', [series], ['a'], { smoothing: 0.6, logY: true, x: 'time' }, theme) as {
      series: { data: number[][]; silent?: boolean }[];
      yAxis: { type: string };
    };
    expect(smooth.series).toHaveLength(2);
    expect(smooth.series[0].silent).toBe(true);
    expect(smooth.series[1].data[3][1]).toBeGreaterThan(0.5); // smoothed lags behind the raw value
    expect(smooth.yAxis.type).toBe('log');
  });

  it('shows a metric with one value per run as bars with the best marked', () => {
    const option = barsOption('accuracy', [0.7, 0.9, null], ['a', 'b', 'c'], 1, theme) as {
      series: { data: { value: number | null; itemStyle: { color: string } }[] }[];
    };
    expect(option.series[0].data.map(d => d.value)).toEqual([0.7, 0.9, null]);
    expect(option.series[0].data[1].itemStyle.color).toBe('#2e7d32');
    expect(escapeHtml('<img onerror=x>')).toBe('&#60;img onerror=x&#62;');
  });
});
