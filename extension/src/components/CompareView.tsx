/**
 * Runs side by side. Any number (up to 1,000): parallel coordinates over the parameters that differ and a
 * chosen metric (brush an axis to narrow down), a parameter-vs-metric scatter, and a table. Up to 20 also
 * in full: parameters and metrics with the best value marked, curves overlaid (smoothing, log scale, x by
 * step or time), scalar metrics as bars, the code diff, data hashes and the environment. The first column
 * of every side-by-side table stays in view however wide it gets; "differences only" hides equal rows.
 */
import * as React from 'react';

import { IComparison, IRunSummary, ISideBySide } from '../api';
import { ICurveOptions } from '../charts/options';
import { cellValue, IColumn, MetricStat } from '../columns';
import { bestIndex, colorAt, diffLineKind, formatValue, lowerIsBetter, plural, shortId } from '../format';
import { CompareModel, MAX_DETAILED } from '../model';
import { CurveControls, DEFAULT_CURVES, MetricBars, MetricCurves, ParallelCoordinates, ParamScatter } from './CompareCharts';
import { Section } from './RunDetail';

export interface ICompareViewProps {
  model: CompareModel;
  onOpenRun: (id: string) => void;
  /** Compare these runs instead (a brushed subset small enough for the full comparison). */
  onCompareIds: (ids: string[]) => void;
  /** The parallel coordinates finished drawing (the browser benchmark times it). */
  onChartRendered?: () => void;
}

export function runLabel(run: IRunSummary): string {
  return `${run.name ?? ''} ${shortId(run.id)}`.trim();
}

/**
 * Parameters whose values differ across the runs, most widely recorded first; with many runs, only those
 * at least half of them record (an axis most runs have no value on says little and hides the rest).
 */
export function differingParams(runs: readonly IRunSummary[]): string[] {
  const counts = new Map<string, number>();
  const values = new Map<string, Set<string>>();
  for (const run of runs) {
    for (const [key, value] of Object.entries(run.params ?? {})) {
      counts.set(key, (counts.get(key) ?? 0) + 1);
      values.set(key, (values.get(key) ?? new Set()).add(formatValue(value)));
    }
  }
  const enough = runs.length > MAX_DETAILED ? runs.length / 2 : 1;
  return [...counts.keys()]
    .filter(key => (values.get(key)?.size ?? 0) > 1 || (counts.get(key) ?? 0) < runs.length)
    .filter(key => (counts.get(key) ?? 0) >= enough)
    .sort((a, b) => (counts.get(b) ?? 0) - (counts.get(a) ?? 0) || a.localeCompare(b));
}

/** Metric names the runs hold, most widely recorded first. */
export function metricNames(runs: readonly IRunSummary[]): string[] {
  const counts = new Map<string, number>();
  for (const run of runs) {
    for (const key of Object.keys(run.metrics ?? {})) {
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  }
  return [...counts.keys()].sort((a, b) => (counts.get(b) ?? 0) - (counts.get(a) ?? 0) || a.localeCompare(b));
}

export function CompareView(props: ICompareViewProps): JSX.Element {
  const { model } = props;
  const runs = model.summaries;
  const [diffOnly, setDiffOnly] = React.useState(false);
  const [metricKey, setMetricKey] = React.useState<string | null>(null);
  const [stat, setStat] = React.useState<MetricStat>('last');
  const [scatterParam, setScatterParam] = React.useState<string | null>(null);
  const [curves, setCurves] = React.useState<ICurveOptions>(DEFAULT_CURVES);
  const [brushed, setBrushed] = React.useState<IRunSummary[] | null>(null);
  const [flipped, setFlipped] = React.useState<Record<string, boolean>>({});
  const root = React.useRef<HTMLDivElement>(null);
  // The parallel coordinates draw first; the scatter and the tables follow once they have (or after a
  // second at most), so the chart a person looks at first is not slowed by the rest.
  const [rest, setRest] = React.useState(false);
  React.useLayoutEffect(() => {
    // When the runs arrived on screen: the browser benchmark times the charts from here.
    root.current?.setAttribute('data-summaries-at', String(performance.now()));
    setRest(false);
    const fallback = setTimeout(() => setRest(true), 1000);
    return () => clearTimeout(fallback);
  }, [runs]);
  if (!runs.length || model.error) {
    return (
      <div className="pk-compare">
        {model.error ? <div className="pk-error">{model.error}</div> : <div className="pk-muted">loading…</div>}
      </div>
    );
  }
  const params = differingParams(runs).slice(0, 12);
  const metrics = metricNames(runs);
  const metric = metricKey && metrics.includes(metricKey) ? metricKey : metrics[0] ?? null;
  const metricColumn: IColumn | null = metric ? { source: 'metric', key: metric, stat } : null;
  const xParam = scatterParam && params.includes(scatterParam) ? scatterParam : params[0] ?? null;
  const lowerBetter = (name: string) => lowerIsBetter(name) !== Boolean(flipped[name]);
  const comparison = model.comparison;
  const labels = runs.map(runLabel);
  return (
    <div className="pk-compare" data-runs={runs.length} ref={root}>
      <h2 className="pk-detail-title">
        Comparing {plural(runs.length, 'run')}
        {model.label && !model.label.endsWith(' runs') ? <span className="pk-muted"> · {model.label}</span> : null}
      </h2>
      <RunChips runs={runs} onOpenRun={props.onOpenRun} />
      <div className="pk-compare-controls">
        <label>
          <input type="checkbox" className="pk-diff-only" checked={diffOnly} onChange={e => setDiffOnly(e.currentTarget.checked)} />
          differences only
        </label>
        {metrics.length ? (
          <label>
            colour by
            <select className="pk-select pk-color-metric" value={metric ?? ''} onChange={e => setMetricKey(e.currentTarget.value)}>
              {metrics.map(m => (
                <option key={m} value={m}>
                  {m}
                </option>
              ))}
            </select>
            <select className="pk-select pk-color-stat" value={stat} onChange={e => setStat(e.currentTarget.value as MetricStat)}>
              <option value="last">last</option>
              <option value="min">min</option>
              <option value="max">max</option>
            </select>
          </label>
        ) : null}
      </div>
      <Section title="Parallel coordinates">
        <ParallelCoordinates
          runs={runs}
          params={params}
          metric={metricColumn}
          onBrush={setBrushed}
          onRendered={() => {
            props.onChartRendered?.();
            setRest(true);
          }}
        />
        <Brushed brushed={brushed} total={runs.length} onCompareIds={props.onCompareIds} />
      </Section>
      {rest && xParam && metricColumn ? (
        <Section title="Parameter against metric">
          <label className="pk-inline-control">
            parameter
            <select className="pk-select pk-scatter-param" value={xParam} onChange={e => setScatterParam(e.currentTarget.value)}>
              {params.map(p => (
                <option key={p} value={p}>
                  {p}
                </option>
              ))}
            </select>
          </label>
          <ParamScatter
            runs={runs}
            param={xParam}
            metric={metricColumn}
            highlighted={brushed ? new Set(brushed.map(r => r.id)) : null}
            label={runLabel}
            onOpenRun={props.onOpenRun}
          />
        </Section>
      ) : null}
      {!rest ? null : comparison ? (
        <Detailed
          comparison={comparison}
          labels={labels}
          diffOnly={diffOnly}
          curves={curves}
          onCurves={setCurves}
          lowerBetter={lowerBetter}
          onFlip={name => setFlipped({ ...flipped, [name]: !flipped[name] })}
        />
      ) : (
        <Section title={metric ? `Runs, best ${metric} first` : 'Runs'}>
          <RunsTable runs={brushed ?? runs} params={params} metric={metricColumn} lowerBetter={lowerBetter} onOpenRun={props.onOpenRun} />
        </Section>
      )}
    </div>
  );
}

function RunChips(props: { runs: readonly IRunSummary[]; onOpenRun: (id: string) => void }): JSX.Element {
  const shown = props.runs.slice(0, props.runs.length > MAX_DETAILED ? 6 : MAX_DETAILED);
  return (
    <div className="pk-compare-runs">
      {shown.map((r, i) => (
        <button key={r.id} className="pk-link" style={{ color: colorAt(i) }} title={r.name ?? r.id} onClick={() => props.onOpenRun(r.id)}>
          <span className={`pk-status pk-status-${r.status}`} /> {runLabel(r)}
        </button>
      ))}
      {props.runs.length > shown.length ? (
        <span className="pk-muted">
          and {props.runs.length - shown.length} more; the full comparison takes up to {MAX_DETAILED}: brush the axes
          below to narrow down
        </span>
      ) : null}
    </div>
  );
}

function Brushed(props: { brushed: IRunSummary[] | null; total: number; onCompareIds: (ids: string[]) => void }): JSX.Element | null {
  const { brushed } = props;
  if (!brushed) {
    return null;
  }
  const fits = brushed.length >= 2 && brushed.length <= MAX_DETAILED;
  return (
    <div className="pk-brushed">
      <span className="pk-brushed-count">
        {brushed.length} of {plural(props.total, 'run')} in the brushed ranges
      </span>
      <button
        className="pk-button pk-compare-brushed"
        disabled={!fits}
        title={fits ? 'Compare these runs in full' : `Narrow down to 2..${MAX_DETAILED} runs to compare them in full`}
        onClick={() => props.onCompareIds(brushed.map(r => r.id))}
      >
        Compare these {brushed.length}
      </button>
    </div>
  );
}

function RunsTable(props: {
  runs: readonly IRunSummary[];
  params: string[];
  metric: IColumn | null;
  lowerBetter: (name: string) => boolean;
  onOpenRun: (id: string) => void;
}): JSX.Element {
  const { metric } = props;
  const value = (r: IRunSummary) => (metric ? cellValue(r, metric) : undefined);
  const sorted = [...props.runs];
  if (metric) {
    const sign = props.lowerBetter(metric.key) ? 1 : -1;
    const key = (r: IRunSummary) => (typeof value(r) === 'number' ? (value(r) as number) * sign : Infinity);
    sorted.sort((a, b) => key(a) - key(b));
  }
  const shown = sorted.slice(0, 100);
  return (
    <div className="pk-scroll-x">
      <table className="pk-kv pk-side pk-runs-table">
        <thead>
          <tr>
            <th>run</th>
            {props.params.map(p => (
              <th key={p}>{p}</th>
            ))}
            {metric ? <th>{metric.key}</th> : null}
          </tr>
        </thead>
        <tbody>
          {shown.map(r => (
            <tr key={r.id} onClick={() => props.onOpenRun(r.id)} className="pk-clickable">
              <th title={r.name ?? r.id}>{runLabel(r)}</th>
              {props.params.map(p => (
                <td key={p}>{formatValue(r.params?.[p])}</td>
              ))}
              {metric ? <td>{formatValue(value(r))}</td> : null}
            </tr>
          ))}
        </tbody>
      </table>
      {sorted.length > shown.length ? <div className="pk-muted">the best 100 of {sorted.length} shown</div> : null}
    </div>
  );
}

function Detailed(props: {
  comparison: IComparison;
  labels: string[];
  diffOnly: boolean;
  curves: ICurveOptions;
  onCurves: (options: ICurveOptions) => void;
  lowerBetter: (name: string) => boolean;
  onFlip: (name: string) => void;
}): JSX.Element {
  const { comparison, labels, diffOnly } = props;
  return (
    <>
      <Section title={`Parameters (${comparison.params.different.length} differ)`}>
        <SideBySide table={comparison.params} labels={labels} diffOnly={diffOnly} className="pk-compare-params" />
      </Section>
      <Section title="Metrics">
        <MetricsTable {...props} />
        <CurveControls options={props.curves} onChange={props.onCurves} />
        <MetricCharts {...props} />
      </Section>
      <Section title={comparison.code.same ? 'Code (identical)' : 'Code (differs)'}>
        <CodeDiffs comparison={comparison} />
      </Section>
      <Section title={`Data (${comparison.data.different.length} changed)`}>
        <SideBySide table={comparison.data} labels={labels} diffOnly={diffOnly} className="pk-hash pk-compare-data" />
      </Section>
      <Section title="Environment">
        <EnvironmentChanges comparison={comparison} labels={labels} diffOnly={diffOnly} />
      </Section>
    </>
  );
}

function MetricsTable(props: {
  comparison: IComparison;
  labels: string[];
  diffOnly: boolean;
  lowerBetter: (name: string) => boolean;
  onFlip: (name: string) => void;
}): JSX.Element {
  const table = props.comparison.metrics;
  if (!table.names.length) {
    return <div className="pk-muted">none recorded</div>;
  }
  const different = new Set(table.different);
  const names = props.diffOnly ? table.names.filter(n => different.has(n)) : table.names;
  return (
    <div className="pk-scroll-x">
      <table className="pk-kv pk-side pk-compare-metrics">
        <RunColumnsHead labels={props.labels} />
        <tbody>
          {names.map(name => {
            const lower = props.lowerBetter(name);
            const best = bestIndex(table.values[name], lower);
            return (
              <tr key={name} className={different.has(name) ? 'pk-diff' : undefined}>
                <th>
                  {name}{' '}
                  <button
                    className="pk-link pk-direction"
                    title={`best is the ${lower ? 'lowest' : 'highest'}; click to flip`}
                    onClick={() => props.onFlip(name)}
                  >
                    {lower ? '↓' : '↑'}
                  </button>
                </th>
                {table.values[name].map((value, i) => (
                  <td key={i} className={i === best ? 'pk-best' : undefined} title={i === best ? 'best' : undefined}>
                    {formatValue(value)}
                    {i === best ? ' ★' : ''}
                  </td>
                ))}
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

function MetricCharts(props: {
  comparison: IComparison;
  labels: string[];
  curves: ICurveOptions;
  lowerBetter: (name: string) => boolean;
}): JSX.Element {
  const { comparison, labels } = props;
  const keys = [...new Set([...Object.keys(comparison.metric_series), ...comparison.metrics.names])].sort();
  return (
    <div className="pk-charts">
      {keys.map(key => {
        const perRun = comparison.metric_series[key] ?? labels.map(() => null);
        const longest = Math.max(0, ...perRun.map(s => s?.values.length ?? 0));
        if (longest > 1) {
          return <MetricCurves key={key} metric={key} perRun={perRun} labels={labels} options={props.curves} />;
        }
        // One value per run (or only a summary value): bars, never an empty line chart.
        const values = labels.map((_, i) => {
          const last = comparison.metrics.values[key]?.[i];
          const point = perRun[i]?.values[0];
          return typeof last === 'number' ? last : typeof point === 'number' ? point : null;
        });
        const best = bestIndex(values, props.lowerBetter(key));
        return <MetricBars key={key} metric={key} values={values} labels={labels} best={best} />;
      })}
    </div>
  );
}

/** The header row of a side-by-side table: an empty corner, then one column per run, labelled. */
function RunColumnsHead(props: { labels: string[] }): JSX.Element {
  return (
    <thead>
      <tr>
        <th />
        {props.labels.map((label, i) => (
          <th key={i} title={label}>
            {label}
          </th>
        ))}
      </tr>
    </thead>
  );
}

export function SideBySide(props: { table: ISideBySide; labels: string[]; diffOnly?: boolean; className?: string }): JSX.Element {
  const { table } = props;
  const different = new Set(table.different);
  const names = props.diffOnly ? table.names.filter(n => different.has(n)) : table.names;
  if (!names.length) {
    return <div className="pk-muted">{table.names.length ? 'no differences' : 'none recorded'}</div>;
  }
  return (
    <div className="pk-scroll-x">
      <table className={`pk-kv pk-side ${props.className ?? ''}`}>
        <RunColumnsHead labels={props.labels} />
        <tbody>
          {names.map(name => (
            <tr key={name} className={different.has(name) ? 'pk-diff' : undefined}>
              <th title={name}>{name}</th>
              {table.values[name].map((value, i) => (
                <td key={i} title={formatValue(value)}>
                  {formatValue(value)}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function CodeDiffs(props: { comparison: IComparison }): JSX.Element {
  const { code } = props.comparison;
  if (code.same) {
    return <div className="pk-muted">all runs ran the same code ({code.hashes[0] ?? 'no hash'})</div>;
  }
  return (
    <div>
      {code.diffs.map((diff, i) => (
        <pre key={i} className="pk-pre pk-diff-text">
          {diff
            ? diff.split('\n').map((line, j) => (
                <div key={j} className={`pk-diff-${diffLineKind(line)}`}>
                  {line || ' '}
                </div>
              ))
            : 'same code as the first run'}
        </pre>
      ))}
    </div>
  );
}

function EnvironmentChanges(props: { comparison: IComparison; labels: string[]; diffOnly: boolean }): JSX.Element {
  const env = props.comparison.environment;
  const fields: ISideBySide = { names: Object.keys(env.fields), values: env.fields, different: Object.keys(env.changed) };
  const packages: ISideBySide = {
    names: Object.keys(env.packages_changed),
    values: env.packages_changed,
    different: Object.keys(env.packages_changed)
  };
  const commits = props.comparison.git;
  const git: ISideBySide = {
    names: commits.some(c => c) ? ['git commit'] : [],
    values: { 'git commit': commits },
    different: new Set(commits).size > 1 ? ['git commit'] : []
  };
  return (
    <div>
      <SideBySide table={fields} labels={props.labels} diffOnly={props.diffOnly} />
      {git.names.length ? <SideBySide table={git} labels={props.labels} diffOnly={props.diffOnly} /> : null}
      <div className="pk-muted">{packages.names.length ? `${packages.names.length} packages differ` : 'same packages'}</div>
      {packages.names.length ? <SideBySide table={packages} labels={props.labels} /> : null}
    </div>
  );
}
