/**
 * A small inline SVG line chart: enough for metric curves, overlays and GPU history, no chart library.
 */
import * as React from 'react';

import { colorAt, extent, IExtent, linePath } from '../format';

export interface ILineSeries {
  label: string;
  xs: (number | null)[];
  ys: (number | null)[];
  color?: string;
}

export interface ILineChartProps {
  title?: string;
  series: ILineSeries[];
  width?: number;
  height?: number;
  /** A fixed y range (e.g. 0..100 for a percentage); otherwise the data's. */
  yRange?: IExtent;
  formatY?: (value: number) => string;
  formatX?: (value: number) => string;
  legend?: boolean;
}

const PAD = { left: 44, right: 8, top: 6, bottom: 16 };

function defaultFormat(value: number): string {
  return Math.abs(value) >= 1000 || (Math.abs(value) < 0.01 && value !== 0)
    ? value.toExponential(2)
    : Number(value.toPrecision(4)).toString();
}

export function LineChart(props: ILineChartProps): JSX.Element {
  const width = props.width ?? 360;
  const height = props.height ?? 120;
  const formatY = props.formatY ?? defaultFormat;
  const formatX = props.formatX ?? defaultFormat;
  const x = extent(props.series.flatMap(s => s.xs));
  const y = props.yRange ?? extent(props.series.flatMap(s => s.ys));
  const inner = { width: width - PAD.left - PAD.right, height: height - PAD.top - PAD.bottom };
  return (
    <figure className="pk-chart">
      {props.title ? <figcaption className="pk-chart-title">{props.title}</figcaption> : null}
      {x && y ? (
        <svg width={width} height={height} role="img" aria-label={props.title ?? 'chart'}>
          <g transform={`translate(${PAD.left},${PAD.top})`}>
            <rect className="pk-chart-frame" width={inner.width} height={inner.height} />
            {props.series.map((s, i) => (
              <path
                key={i}
                className="pk-chart-line"
                d={linePath(s.xs, s.ys, { ...inner, x, y })}
                stroke={s.color ?? colorAt(i)}
              >
                <title>{s.label}</title>
              </path>
            ))}
            <text className="pk-chart-axis" x={-4} y={8} textAnchor="end">
              {formatY(y.max)}
            </text>
            <text className="pk-chart-axis" x={-4} y={inner.height} textAnchor="end">
              {formatY(y.min)}
            </text>
            <text className="pk-chart-axis" x={0} y={inner.height + 12}>
              {formatX(x.min)}
            </text>
            <text className="pk-chart-axis" x={inner.width} y={inner.height + 12} textAnchor="end">
              {formatX(x.max)}
            </text>
          </g>
        </svg>
      ) : (
        <div className="pk-muted">no numeric values</div>
      )}
      {props.legend !== false && props.series.length > 1 ? (
        <div className="pk-legend">
          {props.series.map((s, i) => (
            <span key={i} className="pk-legend-item">
              <span className="pk-swatch" style={{ background: s.color ?? colorAt(i) }} />
              {s.label}
            </span>
          ))}
        </div>
      ) : null}
    </figure>
  );
}
