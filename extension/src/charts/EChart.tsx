/**
 * A React host for one ECharts instance: created on mount (loading ECharts on first use), given a new
 * option when it changes, resized with its box, disposed on unmount. Tooltip formatters escape every
 * run string (see `escapeHtml`).
 */
import * as React from 'react';

import type { ECharts, EChartsOption } from './echarts';

export interface IEChartProps {
  option: EChartsOption;
  height: number;
  className?: string;
  /** Replace the whole option instead of merging (when series come and go). */
  notMerge?: boolean;
  /** Events: name -> handler (e.g. `axisareaselected`, `finished`). */
  onEvents?: Record<string, (params: unknown, chart: ECharts) => void>;
  /** The chart instance, once created (for benchmarks and tests). */
  onReady?: (chart: ECharts) => void;
  label?: string;
}

export function EChart(props: IEChartProps): JSX.Element {
  const ref = React.useRef<HTMLDivElement>(null);
  const chartRef = React.useRef<ECharts | null>(null);
  const handlers = React.useRef(props.onEvents);
  handlers.current = props.onEvents;
  const option = React.useRef(props.option);
  option.current = props.option;
  React.useEffect(() => {
    const node = ref.current!;
    let disposed = false;
    let observer: ResizeObserver | null = null;
    void import('./echarts').then(({ echarts }) => {
      if (disposed) {
        return;
      }
      const chart = echarts.init(node, undefined, { renderer: 'canvas' });
      chartRef.current = chart;
      for (const name of Object.keys(handlers.current ?? {})) {
        chart.on(name, (params: unknown) => handlers.current?.[name]?.(params, chart));
      }
      chart.setOption(option.current, { notMerge: true });
      // ResizeObserver reports the size it starts with too: redrawing then would render every line twice.
      let size = `${node.clientWidth}x${node.clientHeight}`;
      observer = new ResizeObserver(() => {
        const now = `${node.clientWidth}x${node.clientHeight}`;
        if (now !== size) {
          size = now;
          chart.resize();
        }
      });
      observer.observe(node);
      props.onReady?.(chart);
    });
    return () => {
      disposed = true;
      observer?.disconnect();
      chartRef.current?.dispose();
      chartRef.current = null;
    };
  }, []);
  React.useEffect(() => {
    chartRef.current?.setOption(props.option, { notMerge: props.notMerge ?? true, lazyUpdate: false });
  }, [props.option, props.notMerge]);
  return (
    <div
      ref={ref}
      className={`pk-echart ${props.className ?? ''}`}
      style={{ height: props.height }}
      role="img"
      aria-label={props.label ?? 'chart'}
    />
  );
}

