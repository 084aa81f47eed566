/**
 * Two or more runs side by side: parameters (differences highlighted), metric curves overlaid, code diff,
 * data hash changes and environment changes.
 */
import * as React from 'react';

import { IComparison, ISideBySide } from '../api';
import { colorAt, diffLineKind, formatValue, seriesXs, shortId } from '../format';
import { CompareModel } from '../model';
import { LineChart } from './LineChart';
import { Section } from './RunDetail';

export interface ICompareViewProps {
  model: CompareModel;
  onOpenRun: (id: string) => void;
}

export function CompareView(props: ICompareViewProps): JSX.Element {
  const { comparison, error } = props.model;
  if (!comparison) {
    return (
      <div className="pk-compare">
        {error ? <div className="pk-error">{error}</div> : <div className="pk-muted">loading…</div>}
      </div>
    );
  }
  const labels = comparison.runs.map(r => `${r.name ?? ''} ${shortId(r.id)}`.trim());
  return (
    <div className="pk-compare">
      <h2 className="pk-detail-title">Comparing {comparison.runs.length} runs</h2>
      <div className="pk-compare-runs">
        {comparison.runs.map((r, i) => (
          <button key={r.id} className="pk-link" style={{ color: colorAt(i) }} onClick={() => props.onOpenRun(r.id)}>
            <span className={`pk-status pk-status-${r.status}`} /> {labels[i]}
          </button>
        ))}
      </div>
      <Section title={`Parameters (${comparison.params.different.length} differ)`}>
        <SideBySide table={comparison.params} labels={labels} className="pk-compare-params" />
      </Section>
      <Section title="Metrics">
        <SideBySide table={comparison.metrics} labels={labels} />
        <MetricOverlays comparison={comparison} labels={labels} />
      </Section>
      <Section title={comparison.code.same ? 'Code (identical)' : 'Code (differs)'}>
        <CodeDiffs comparison={comparison} />
      </Section>
      <Section title={`Data (${comparison.data.different.length} changed)`}>
        <SideBySide table={comparison.data} labels={labels} className="pk-hash" />
      </Section>
      <Section title="Environment">
        <EnvironmentChanges comparison={comparison} labels={labels} />
      </Section>
    </div>
  );
}

function SideBySide(props: { table: ISideBySide; labels: string[]; className?: string }): JSX.Element {
  const { table } = props;
  if (!table.names.length) {
    return <div className="pk-muted">none recorded</div>;
  }
  const different = new Set(table.different);
  return (
    <table className={`pk-kv pk-side ${props.className ?? ''}`}>
      <thead>
        <tr>
          <th />
          {props.labels.map((label, i) => (
            <th key={i}>{label}</th>
          ))}
        </tr>
      </thead>
      <tbody>
        {table.names.map(name => (
          <tr key={name} className={different.has(name) ? 'pk-diff' : undefined}>
            <th>{name}</th>
            {table.values[name].map((value, i) => (
              <td key={i}>{formatValue(value)}</td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function MetricOverlays(props: { comparison: IComparison; labels: string[] }): JSX.Element {
  const entries = Object.entries(props.comparison.metric_series);
  return (
    <div className="pk-charts">
      {entries.map(([key, perRun]) => (
        <LineChart
          key={key}
          title={key}
          series={perRun.flatMap((s, i) =>
            s ? [{ label: props.labels[i], xs: seriesXs(s.steps), ys: s.values, color: colorAt(i) }] : []
          )}
        />
      ))}
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

function EnvironmentChanges(props: { comparison: IComparison; labels: string[] }): JSX.Element {
  const env = props.comparison.environment;
  const fields: ISideBySide = {
    names: Object.keys(env.fields),
    values: env.fields,
    different: Object.keys(env.changed)
  };
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
      <SideBySide table={fields} labels={props.labels} />
      {git.names.length ? <SideBySide table={git} labels={props.labels} /> : null}
      <div className="pk-muted">
        {packages.names.length ? `${packages.names.length} packages differ` : 'same packages'}
      </div>
      {packages.names.length ? <SideBySide table={packages} labels={props.labels} /> : null}
    </div>
  );
}
