/**
 * ECharts options for the comparison's charts, built from run summaries and series. Pure functions (no
 * DOM), so they are unit tested; every text that comes from a run goes through `escapeText` in tooltips.
 */
import { IRunSummary, ISeries } from '../api';
import type { EChartsOption } from './echarts';
import { cellValue, columnLabel, IColumn } from '../columns';
import { colorAt, ema, formatNumber, formatValue } from '../format';

/** One axis of the parallel coordinates: a parameter or a metric, numbers or categories. */
export interface IAxis {
  column: IColumn;
  name: string;
  type: 'value' | 'log' | 'category';
  categories?: string[];
}

/** The axes for some columns over these runs: numeric axes (log when positive and spanning 100x+),
 * category axes for text, booleans and mixed values. Columns no run has a value for are left out. */
export function axesFor(runs: readonly IRunSummary[], columns: IColumn[]): IAxis[] {
  const axes: IAxis[] = [];
  for (const column of columns) {
    const values = runs.map(r => cellValue(r, column)).filter(v => v !== undefined && v !== null);
    if (!values.length) {
      continue;
    }
    const numeric = values.every(v => typeof v === 'number' && isFinite(v));
    if (numeric) {
      const numbers = values as number[];
      const min = Math.min(...numbers);
      const max = Math.max(...numbers);
      const log = column.source === 'param' && min > 0 && max / min >= 100;
      axes.push({ column, name: columnLabel(column), type: log ? 'log' : 'value' });
    } else {
      const categories = [...new Set(values.map(v => formatValue(v)))].sort();
      axes.push({ column, name: columnLabel(column), type: 'category', categories });
    }
  }
  return axes;
}

/** A run's coordinate on an axis ('-' is ECharts' missing value). */
export function coordinate(run: IRunSummary, axis: IAxis): number | string {
  const value = cellValue(run, axis.column);
  if (value === undefined || value === null) {
    return '-';
  }
  if (axis.type === 'category') {
    return formatValue(value);
  }
  return typeof value === 'number' && isFinite(value) && (axis.type !== 'log' || value > 0) ? value : '-';
}

/** The metric range for the colour scale, or null when no run has the metric. */
export function valueRange(runs: readonly IRunSummary[], column: IColumn): { min: number; max: number } | null {
  const numbers = runs.map(r => cellValue(r, column)).filter((v): v is number => typeof v === 'number' && isFinite(v));
  if (!numbers.length) {
    return null;
  }
  const min = Math.min(...numbers);
  const max = Math.max(...numbers);
  return min === max ? { min: min - (Math.abs(min) || 1) * 0.01, max: max + (Math.abs(max) || 1) * 0.01 } : { min, max };
}

export interface IChartTheme {
  text: string;
  muted: string;
  grid: string;
}

/** Parallel coordinates: one line per run, coloured by the last axis (the chosen metric), brushable. */
export function parallelOption(runs: readonly IRunSummary[], axes: IAxis[], theme: IChartTheme): EChartsOption {
  const colorAxis = axes.length - 1;
  const range = axes.length ? valueRange(runs, axes[colorAxis].column) : null;
  return {
    animation: false,
    parallel: { left: 48, right: 72, top: 36, bottom: 28, parallelAxisDefault: { nameGap: 12 } },
    parallelAxis: axes.map((axis, dim) => ({
      dim,
      id: `axis-${dim}`,
      name: axis.name,
      type: axis.type,
      data: axis.categories,
      nameTextStyle: { color: theme.text, fontSize: 11, width: 90, overflow: 'truncate' },
      axisLabel: { color: theme.muted, fontSize: 10, hideOverlap: true },
      axisLine: { lineStyle: { color: theme.muted } },
      realtime: true,
      areaSelectStyle: { width: 16, opacity: 0.3 }
    })),
    visualMap: range
      ? {
          type: 'continuous',
          dimension: colorAxis,
          min: range.min,
          max: range.max,
          right: 0,
          top: 40,
          itemHeight: 120,
          calculable: false,
          precision: 4,
          textStyle: { color: theme.muted, fontSize: 10 },
          inRange: { color: ['#3b4cc0', '#8db0fe', '#dddddd', '#f49a7b', '#b40426'] },
          outOfRange: { color: '#bbbbbb' }
        }
      : undefined,
    series: [
      {
        type: 'parallel',
        lineStyle: { width: 1, opacity: runs.length > 200 ? 0.35 : 0.7 },
        inactiveOpacity: 0.03,
        activeOpacity: 1,
        progressive: 0, // draw every line in one frame: 1,000 runs are cheap on canvas
        smooth: false,
        data: runs.map(run => axes.map(axis => coordinate(run, axis)))
      }
    ]
  };
}

/** The runs inside every brushed interval (an axis without a brush lets every run through). */
export function brushedRuns<T extends IRunSummary>(runs: readonly T[], axes: IAxis[], intervals: Map<number, number[][]>): T[] {
  return runs.filter(run =>
    [...intervals.entries()].every(([dim, ranges]) => {
      const axis = axes[dim];
      if (!axis || !ranges.length) {
        return true;
      }
      const raw = coordinate(run, axis);
      if (raw === '-') {
        return false;
      }
      const position = axis.type === 'category' ? axis.categories!.indexOf(String(raw)) : (raw as number);
      return ranges.some(([low, high]) => position >= Math.min(low, high) && position <= Math.max(low, high));
    })
  );
}

/** A parameter against a metric, one point per run. */
export function scatterOption(
  runs: readonly IRunSummary[],
  x: IAxis,
  y: IColumn,
  highlighted: Set<string> | null,
  theme: IChartTheme,
  label: (run: IRunSummary) => string
): EChartsOption {
  const points = runs
    .map(run => ({ run, x: coordinate(run, x), y: cellValue(run, y) }))
    .filter(p => p.x !== '-' && typeof p.y === 'number' && isFinite(p.y));
  return {
    animation: false,
    grid: { left: 56, right: 16, top: 16, bottom: 40 },
    xAxis: {
      type: x.type,
      data: x.categories,
      name: x.name,
      nameLocation: 'middle',
      nameGap: 26,
      scale: true,
      axisLabel: { color: theme.muted },
      nameTextStyle: { color: theme.text },
      splitLine: { lineStyle: { color: theme.grid } }
    },
    yAxis: {
      type: 'value',
      name: columnLabel(y),
      scale: true,
      axisLabel: { color: theme.muted },
      nameTextStyle: { color: theme.text },
      splitLine: { lineStyle: { color: theme.grid } }
    },
    tooltip: { trigger: 'item', formatter: (p: { dataIndex: number }) => scatterTip(points[p.dataIndex], x, y, label) },
    series: [
      {
        type: 'scatter',
        symbolSize: runs.length > 300 ? 5 : 8,
        data: points.map(p => ({
          value: [p.x, p.y],
          name: p.run.id, // a click names the run to open
          itemStyle: { color: highlighted && !highlighted.has(p.run.id) ? '#c8c8c8' : '#1f77b4' }
        }))
      }
    ]
  };
}

function scatterTip(
  point: { run: IRunSummary; x: number | string; y: unknown } | undefined,
  x: IAxis,
  y: IColumn,
  label: (run: IRunSummary) => string
): string {
  if (!point) {
    return '';
  }
  return `${escapeHtml(label(point.run))}<br/>${escapeHtml(x.name)}: ${escapeHtml(formatValue(point.x))}<br/>` +
    `${escapeHtml(columnLabel(y))}: ${escapeHtml(formatValue(point.y))}`;
}

export type XAxisMode = 'step' | 'time' | 'wall';

export interface ICurveOptions {
  smoothing: number;
  logY: boolean;
  x: XAxisMode;
}

/** The x of each point: the step (or position), seconds since the series began, or wall-clock time. */
export function curveXs(series: ISeries, mode: XAxisMode): (number | null)[] {
  if (mode === 'step') {
    return series.steps.map((s, i) => (typeof s === 'number' ? s : i));
  }
  const t0 = series.timestamps.find(t => typeof t === 'number') ?? 0;
  return series.timestamps.map(t => (typeof t === 'number' ? (mode === 'time' ? t - t0 : t * 1000) : null));
}

/** One metric's curves, one per run (smoothed over the faded raw values when smoothing is on). */
export function curvesOption(
  metric: string,
  perRun: (ISeries | null)[],
  labels: string[],
  options: ICurveOptions,
  theme: IChartTheme
): EChartsOption {
  const series: object[] = [];
  perRun.forEach((s, i) => {
    if (!s) {
      return;
    }
    const xs = curveXs(s, options.x);
    const ys = s.values.map(v => (options.logY && typeof v === 'number' && v <= 0 ? null : v));
    const color = colorAt(i);
    const points = (values: (number | null)[]) => xs.map((x, k) => [x, values[k]]);
    if (options.smoothing > 0) {
      series.push({ type: 'line', name: labels[i], data: points(ys), showSymbol: false, silent: true,
                    lineStyle: { color, opacity: 0.2, width: 1 }, itemStyle: { color }, tooltip: { show: false } });
    }
    series.push({ type: 'line', name: labels[i], data: points(ema(ys, options.smoothing)), showSymbol: xs.length < 3,
                  connectNulls: false, lineStyle: { color, width: 1.5 }, itemStyle: { color }, sampling: 'lttb' });
  });
  return {
    animation: false,
    grid: { left: 56, right: 16, top: 24, bottom: 32 },
    legend: { show: false },
    tooltip: {
      trigger: 'axis',
      formatter: (items: { seriesName: string; value: [number, number | null]; color: string }[]) =>
        curveTip(metric, items, options.x)
    },
    xAxis: {
      type: options.x === 'wall' ? 'time' : 'value',
      name: options.x === 'step' ? 'step' : options.x === 'time' ? 'seconds' : '',
      nameLocation: 'middle',
      nameGap: 20,
      scale: true,
      axisLabel: { color: theme.muted },
      nameTextStyle: { color: theme.muted },
      splitLine: { show: false }
    },
    yAxis: {
      type: options.logY ? 'log' : 'value',
      scale: true,
      axisLabel: { color: theme.muted, formatter: (v: number) => formatNumber(v) },
      splitLine: { lineStyle: { color: theme.grid } }
    },
    series
  };
}

function curveTip(metric: string, items: { seriesName: string; value: [number, number | null]; color: string }[],
                  mode: XAxisMode): string {
  if (!items.length) {
    return '';
  }
  const x = items[0].value[0];
  const head = mode === 'wall' ? new Date(x).toLocaleString() : `${mode === 'step' ? 'step' : 't'} ${formatNumber(x)}`;
  const rows = items
    .filter(item => typeof item.value[1] === 'number')
    .map(item => `<span style="color:${item.color}">●</span> ${escapeHtml(item.seriesName)}: ` +
                 `${escapeHtml(formatNumber(item.value[1] as number))}`);
  return [`${escapeHtml(metric)} · ${escapeHtml(head)}`, ...rows].join('<br/>');
}

/** A metric with one value per run, as bars (the best one marked). */
export function barsOption(metric: string, values: (number | null)[], labels: string[], best: number,
                           theme: IChartTheme): EChartsOption {
  return {
    animation: false,
    grid: { left: 8, right: 48, top: 8, bottom: 8, containLabel: true },
    tooltip: { trigger: 'item', formatter: (p: { dataIndex: number }) =>
      `${escapeHtml(labels[p.dataIndex])}: ${escapeHtml(formatValue(values[p.dataIndex]))}` },
    xAxis: { type: 'value', scale: false, axisLabel: { color: theme.muted }, splitLine: { lineStyle: { color: theme.grid } } },
    yAxis: { type: 'category', inverse: true, data: labels, axisLabel: { color: theme.text, width: 140, overflow: 'truncate' } },
    series: [
      {
        type: 'bar',
        name: metric,
        barMaxWidth: 16,
        data: values.map((v, i) => ({ value: v, itemStyle: { color: i === best ? '#2e7d32' : colorAt(i) } })),
        label: { show: true, position: 'right', color: theme.text, formatter: (p: { value: number | null }) =>
          (typeof p.value === 'number' ? formatNumber(p.value) : '') }
      }
    ]
  };
}

/** Text for ECharts' HTML tooltips: run names and values are user strings, never markup. */
export function escapeHtml(text: unknown): string {
  return String(text).replace(/[&<>"']/g, c => `&#${c.charCodeAt(0)};`);
}
