/**
 * The comparison's charts: parallel coordinates (brush an axis to narrow the runs, colour by a metric), a
 * parameter-vs-metric scatter, overlaid metric curves (EMA smoothing, log scale, x by step or time, hover
 * values) and bars for metrics with one value per run.
 */
import * as React from 'react';

import { IRunSummary, ISeries } from '../api';
import { EChart } from '../charts/EChart';
import type { ECharts } from '../charts/echarts';
import {
  axesFor,
  barsOption,
  brushedRuns,
  curvesOption,
  IAxis,
  IChartTheme,
  ICurveOptions,
  parallelOption,
  scatterOption,
  XAxisMode
} from '../charts/options';
import { themeColors } from '../charts/theme';
import { IColumn } from '../columns';

const FALLBACK_THEME: IChartTheme = { text: '#212121', muted: '#616161', grid: '#e0e0e0' };

/**
 * JupyterLab's theme colours, read from the document as the chart is first rendered: reading them after
 * mounting would hand the chart a second option, and draw every line twice.
 */
export function useChartTheme(): [React.RefObject<HTMLDivElement>, IChartTheme] {
  const ref = React.useRef<HTMLDivElement>(null);
  const [theme] = React.useState<IChartTheme>(() =>
    typeof document === 'undefined' ? FALLBACK_THEME : themeColors(document.body)
  );
  return [ref, theme];
}

export interface IParallelProps {
  runs: readonly IRunSummary[];
  params: string[];
  metric: IColumn | null;
  /** The runs inside the brushed ranges (null: no brush). */
  onBrush: (runs: IRunSummary[] | null) => void;
  /** The chart finished drawing (for the benchmark: time to first full render). */
  onRendered?: (chart: ECharts | null) => void;
}

/** Parallel coordinates over the runs' parameters and one metric (the last axis, also the colour). */
export function ParallelCoordinates(props: IParallelProps): JSX.Element {
  const [ref, theme] = useChartTheme();
  const columns: IColumn[] = [
    ...props.params.map(key => ({ source: 'param' as const, key })),
    ...(props.metric ? [props.metric] : [])
  ];
  const axes = React.useMemo(() => axesFor(props.runs, columns), [props.runs, JSON.stringify(columns)]);
  const option = React.useMemo(() => parallelOption(props.runs, axes, theme), [props.runs, axes, theme]);
  const intervals = React.useRef(new Map<number, number[][]>());
  const axesRef = React.useRef<IAxis[]>(axes);
  axesRef.current = axes;
  React.useEffect(() => {
    intervals.current = new Map();
    props.onBrush(null);
  }, [axes]);
  const onBrush = (params: unknown): void => {
    const { parallelAxisId, intervals: ranges } = params as { parallelAxisId: string; intervals: number[][] };
    const dim = Number(String(parallelAxisId).replace('axis-', ''));
    if (ranges.length) {
      intervals.current.set(dim, ranges);
    } else {
      intervals.current.delete(dim);
    }
    props.onBrush(intervals.current.size ? brushedRuns(props.runs, axesRef.current, intervals.current) : null);
  };
  React.useEffect(() => {
    if (axes.length < 2) {
      props.onRendered?.(null); // nothing to draw: what waits for the chart need not wait
    }
  }, [axes]);
  if (axes.length < 2) {
    return <div className="pk-muted">Parallel coordinates need two or more parameters or metrics with values.</div>;
  }
  return (
    <div ref={ref} className="pk-parallel" data-runs={props.runs.length} data-axes={axes.length}>
      <EChart
        option={option}
        height={300}
        label={`parallel coordinates of ${props.runs.length} runs`}
        onEvents={{
          axisareaselected: onBrush,
          finished: (_, chart) => props.onRendered?.(chart)
        }}
      />
      <div className="pk-muted pk-chart-hint">Drag along an axis to keep the runs in that range; click the axis to clear.</div>
    </div>
  );
}

export interface IScatterProps {
  runs: readonly IRunSummary[];
  param: string;
  metric: IColumn;
  highlighted: Set<string> | null;
  label: (run: IRunSummary) => string;
  onOpenRun: (id: string) => void;
}

export function ParamScatter(props: IScatterProps): JSX.Element {
  const [ref, theme] = useChartTheme();
  const axis = React.useMemo(() => axesFor(props.runs, [{ source: 'param', key: props.param }])[0], [props.runs, props.param]);
  const points = React.useMemo(
    () => props.runs.filter(r => r.params?.[props.param] !== undefined),
    [props.runs, props.param]
  );
  const option = React.useMemo(
    () => (axis ? scatterOption(props.runs, axis, props.metric, props.highlighted, theme, props.label) : null),
    [props.runs, axis, props.metric, props.highlighted, theme]
  );
  if (!axis || !option) {
    return <div className="pk-muted">No run has the parameter {props.param}.</div>;
  }
  return (
    <div ref={ref} className="pk-scatter" data-points={points.length}>
      <EChart
        option={option}
        height={260}
        label={`${props.param} against ${props.metric.key}`}
        onEvents={{ click: params => props.onOpenRun((params as { name: string }).name) }}
      />
    </div>
  );
}

export const DEFAULT_CURVES: ICurveOptions = { smoothing: 0, logY: false, x: 'step' };

/** Smoothing, log scale and x axis, shared by every curve chart of a view. */
export function CurveControls(props: { options: ICurveOptions; onChange: (options: ICurveOptions) => void }): JSX.Element {
  const { options } = props;
  return (
    <div className="pk-curve-controls">
      <label title="Exponential moving average, as TensorBoard smooths">
        smoothing
        <input
          type="range"
          className="pk-smoothing"
          min={0}
          max={0.99}
          step={0.01}
          value={options.smoothing}
          onChange={e => props.onChange({ ...options, smoothing: Number(e.currentTarget.value) })}
        />
        <span className="pk-smoothing-value">{options.smoothing.toFixed(2)}</span>
      </label>
      <label>
        <input
          type="checkbox"
          className="pk-log-y"
          checked={options.logY}
          onChange={e => props.onChange({ ...options, logY: e.currentTarget.checked })}
        />
        log scale
      </label>
      <label>
        x
        <select
          className="pk-select pk-x-axis"
          value={options.x}
          onChange={e => props.onChange({ ...options, x: e.currentTarget.value as XAxisMode })}
        >
          <option value="step">step</option>
          <option value="time">time (s)</option>
          <option value="wall">wall clock</option>
        </select>
      </label>
    </div>
  );
}

export function MetricCurves(props: {
  metric: string;
  perRun: (ISeries | null)[];
  labels: string[];
  options: ICurveOptions;
  height?: number;
}): JSX.Element {
  const [ref, theme] = useChartTheme();
  const option = React.useMemo(
    () => curvesOption(props.metric, props.perRun, props.labels, props.options, theme),
    [props.metric, props.perRun, props.labels, props.options, theme]
  );
  const lines = props.perRun.filter(Boolean).length;
  return (
    <figure ref={ref} className="pk-chart pk-curves" data-metric={props.metric} data-lines={lines}>
      <figcaption className="pk-chart-title">{props.metric}</figcaption>
      <EChart option={option} height={props.height ?? 200} label={`${props.metric} curves`} />
    </figure>
  );
}

export function MetricBars(props: { metric: string; values: (number | null)[]; labels: string[]; best: number }): JSX.Element {
  const [ref, theme] = useChartTheme();
  const option = React.useMemo(
    () => barsOption(props.metric, props.values, props.labels, props.best, theme),
    [props.metric, props.values, props.labels, props.best, theme]
  );
  return (
    <figure ref={ref} className="pk-chart pk-bars" data-metric={props.metric}>
      <figcaption className="pk-chart-title">{props.metric}</figcaption>
      <EChart option={option} height={Math.max(80, 24 * props.values.length + 24)} label={`${props.metric} per run`} />
    </figure>
  );
}
