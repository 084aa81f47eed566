/**
 * One run in full: code, parameters, data hashes, environment, logs, metric charts and GPU chart.
 * Every recorded string is rendered as a React text node.
 */
import * as React from 'react';

import { IRunDetail, IRunGpuSample, IRunPatch, ISeries } from '../api';
import { ICurveOptions } from '../charts/options';
import { elapsed, formatBytes, formatDuration, formatTime, formatValue, shortId } from '../format';
import { RunDetailModel } from '../model';
import { CurveControls, DEFAULT_CURVES, MetricCurves } from './CompareCharts';
import { LineChart } from './LineChart';
import { ChildRuns, Hardware, NoteEditor, Outputs, RunActions, TagEditor } from './RunManage';

export interface IRunDetailProps {
  model: RunDetailModel;
  now: number;
  artifactUrl: (runId: string, path: string) => string;
  logUrl: (runId: string, stream: 'stdout' | 'stderr') => string;
  onOpenNotebook: (run: IRunDetail) => void;
  onOpenRun: (id: string) => void;
  /** Open the executed notebook of a `pykernel-ext run` run in Lab. */
  onOpenExecuted: (run: IRunDetail) => void;
  /** Change the run (rename, note, tags, star, archive). */
  onPatch: (run: IRunDetail, patch: IRunPatch) => Promise<void>;
  /** Delete the run (asks first). */
  onDelete: (run: IRunDetail) => Promise<void>;
}

export function RunDetailView(props: IRunDetailProps): JSX.Element {
  const { model } = props;
  const run = model.run;
  if (!run) {
    return (
      <div className="pk-detail">
        {model.error ? <div className="pk-error">{model.error}</div> : <div className="pk-muted">loading…</div>}
      </div>
    );
  }
  return (
    <div className="pk-detail" data-run-id={run.id}>
      <Header run={run} now={props.now} onOpenNotebook={props.onOpenNotebook} onOpenExecuted={props.onOpenExecuted} />
      <RunActions run={run} onPatch={patch => props.onPatch(run, patch)} onDelete={() => props.onDelete(run)} />
      {model.error ? <div className="pk-error">{model.error}</div> : null}
      <NoteEditor run={run} onSave={note => props.onPatch(run, { note })} />
      {run.error ? (
        <Section title={`Error: ${run.error.type}`}>
          <pre className="pk-pre pk-traceback">{run.error.traceback || run.error.message}</pre>
        </Section>
      ) : null}
      <Section title="Parameters">
        <KeyValues values={run.params} className="pk-params" />
      </Section>
      <Section title={`Tags (${Object.keys(run.tags ?? {}).length})`}>
        <TagEditor run={run} onPatch={patch => props.onPatch(run, patch)} />
      </Section>
      <Metrics run={run} />
      {run.child_runs?.length ? (
        <Section title={`Child runs (${run.children.length})`}>
          <ChildRuns runs={run.child_runs} total={run.children.length} onOpenRun={props.onOpenRun} />
        </Section>
      ) : null}
      <Section title="Outputs">
        <Outputs run={run} />
      </Section>
      <Section title="Data">
        <DataTable run={run} />
      </Section>
      <Section title="Code">
        <Code run={run} />
      </Section>
      <Section title="Logs">
        <Logs run={run} logUrl={props.logUrl} />
      </Section>
      <GpuChart samples={run.gpu_samples} />
      <Section title="Resources and hardware">
        <Hardware run={run} />
      </Section>
      <Section title="Environment">
        <Environment run={run} />
      </Section>
      <Extras run={run} artifactUrl={props.artifactUrl} onOpenRun={props.onOpenRun} />
    </div>
  );
}

/** Artifacts (downloads), child runs and capture warnings, when the run has any. */
function Extras(props: {
  run: IRunDetail;
  artifactUrl: IRunDetailProps['artifactUrl'];
  onOpenRun: (id: string) => void;
}): JSX.Element {
  const { run } = props;
  return (
    <>
      {run.artifacts.length ? (
        <Section title="Artifacts">
          <ul className="pk-list">
            {run.artifacts.map(a => (
              <li key={a.path}>
                <a href={props.artifactUrl(run.id, a.path)} target="_blank" rel="noopener noreferrer" download>
                  {a.path}
                </a>{' '}
                <span className="pk-muted">{formatBytes(a.size)}</span>
              </li>
            ))}
          </ul>
        </Section>
      ) : null}
      {run.warnings?.length ? (
        <Section title="Capture warnings">
          <ul className="pk-list">
            {run.warnings.map((w, i) => (
              <li key={i}>{w}</li>
            ))}
          </ul>
        </Section>
      ) : null}
    </>
  );
}

export function Section(props: { title: string; children: React.ReactNode; open?: boolean }): JSX.Element {
  return (
    <details className="pk-section" open={props.open !== false}>
      <summary>{props.title}</summary>
      {props.children}
    </details>
  );
}

function Header(props: {
  run: IRunDetail;
  now: number;
  onOpenNotebook: (run: IRunDetail) => void;
  onOpenExecuted: (run: IRunDetail) => void;
}): JSX.Element {
  const { run } = props;
  const executed = run.executed_notebook?.blob || run.executed_notebook_server_path;
  return (
    <div className="pk-detail-header">
      <h2 className="pk-detail-title" title={run.name ?? run.id}>
        <span className={`pk-status pk-status-${run.status}`} /> {run.starred ? <span className="pk-star-mark">★ </span> : null}
        {run.name ?? shortId(run.id)}
        {run.archived ? <span className="pk-badge pk-archived-badge">archived</span> : null}
      </h2>
      <div className="pk-detail-meta">
        <span>{run.status}</span>
        <span>{run.kind}</span>
        <span title={run.id}>id {shortId(run.id)}</span>
        <span>{formatTime(run.started_at)}</span>
        <span>{formatDuration(elapsed(run, props.now))}</span>
        {run.host ? <span>{run.host}</span> : null}
        {run.cost?.usd !== undefined && run.cost?.usd !== null ? <span>${run.cost.usd.toFixed(4)}</span> : null}
      </div>
      {run.notebook ? (
        <div className="pk-detail-notebook">
          <span className="pk-muted">{run.notebook}</span>
          {run.notebook_server_path ? (
            <button className="pk-button pk-open-notebook" onClick={() => props.onOpenNotebook(run)}>
              Open notebook{run.cell_id ? ' at cell' : ''}
            </button>
          ) : (
            <span className="pk-muted"> (outside the Jupyter root)</span>
          )}
          {executed ? (
            <button className="pk-button pk-open-executed" onClick={() => props.onOpenExecuted(run)}>
              Open executed notebook
            </button>
          ) : null}
        </div>
      ) : null}
    </div>
  );
}

export function KeyValues(props: { values: Record<string, unknown>; className?: string }): JSX.Element {
  const entries = Object.entries(props.values ?? {});
  if (!entries.length) {
    return <div className="pk-muted">none recorded</div>;
  }
  return (
    <table className={`pk-kv ${props.className ?? ''}`}>
      <tbody>
        {entries.map(([key, value]) => (
          <tr key={key}>
            <th>{key}</th>
            <td>{formatValue(value)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Metrics(props: { run: IRunDetail }): JSX.Element {
  const [curves, setCurves] = React.useState<ICurveOptions>(DEFAULT_CURVES);
  const series = Object.entries(props.run.metric_series ?? {});
  // A metric logged once is a value, shown in the table; only series get a chart.
  const charted = series.filter(([, s]) => s.values.length > 1);
  const label = props.run.name ?? shortId(props.run.id);
  return (
    <Section title="Metrics">
      <KeyValues values={props.run.metrics} className="pk-metric-values" />
      {charted.length ? <CurveControls options={curves} onChange={setCurves} /> : null}
      <div className="pk-charts">
        {charted.map(([key, s]: [string, ISeries]) => (
          <MetricCurves
            key={key}
            metric={s.downsampled_from ? `${key} (${s.downsampled_from} points, sampled)` : key}
            perRun={[s]}
            labels={[label]}
            options={curves}
            height={180}
          />
        ))}
      </div>
    </Section>
  );
}

function DataTable(props: { run: IRunDetail }): JSX.Element {
  const data = props.run.data ?? [];
  if (!data.length) {
    return <div className="pk-muted">no data inputs recorded</div>;
  }
  return (
    <table className="pk-kv">
      <tbody>
        {data.map((d, i) => (
          <tr key={`${d.name}-${i}`}>
            <th>{d.name}</th>
            <td className="pk-hash">{d.hash ?? `unhashed: ${d.error ?? ''}`}</td>
            <td className="pk-muted">
              {d.kind ?? ''} {d.size !== undefined && d.size !== null ? formatBytes(d.size) : ''}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Code(props: { run: IRunDetail }): JSX.Element {
  const code = props.run.code ?? {};
  return (
    <div>
      <div className="pk-muted">hash {code.hash ?? props.run.code_hash ?? '—'}</div>
      <pre className="pk-pre pk-code">{code.source ?? ''}</pre>
      {(code.closure ?? []).map(entry => (
        <div key={`${entry.kind}-${entry.name}`}>
          <div className="pk-muted">
            {entry.kind} {entry.name} (defined in the notebook)
          </div>
          <pre className="pk-pre pk-code">{entry.source}</pre>
        </div>
      ))}
    </div>
  );
}

function Logs(props: { run: IRunDetail; logUrl: IRunDetailProps['logUrl'] }): JSX.Element {
  const logs = props.run.logs_text ?? { stdout: '', stderr: '', stdout_truncated: false, stderr_truncated: false };
  const streams: ('stdout' | 'stderr')[] = ['stdout', 'stderr'];
  return (
    <div>
      {streams.map(stream =>
        logs[stream] ? (
          <div key={stream}>
            <div className="pk-muted">
              {stream}
              {logs[`${stream}_truncated` as 'stdout_truncated'] ? ' (last part; ' : ' ('}
              <a href={props.logUrl(props.run.id, stream)} target="_blank" rel="noopener noreferrer">
                full log
              </a>
              )
            </div>
            <pre className={`pk-pre pk-log pk-log-${stream}`}>{logs[stream]}</pre>
          </div>
        ) : null
      )}
      {streams.map(stream =>
        logs[`${stream}_error` as 'stdout_error'] ? (
          <div key={`${stream}-error`} className="pk-error">
            {stream}: {logs[`${stream}_error` as 'stdout_error']}
          </div>
        ) : null
      )}
      {!logs.stdout && !logs.stderr ? <div className="pk-muted">no output</div> : null}
    </div>
  );
}

function GpuChart(props: { samples: IRunGpuSample[] }): JSX.Element | null {
  if (!props.samples.length) {
    return (
      <Section title="GPU">
        <div className="pk-muted">no GPU samples (no GPU was visible to the run)</div>
      </Section>
    );
  }
  const byGpu = new Map<string, IRunGpuSample[]>();
  for (const s of props.samples) {
    const key = `${s.host ?? ''} GPU ${s.gpu_index}`;
    byGpu.set(key, [...(byGpu.get(key) ?? []), s]);
  }
  const t0 = props.samples[0].timestamp;
  const series = [...byGpu.entries()];
  return (
    <Section title="GPU">
      <LineChart
        title="utilization %"
        yRange={{ min: 0, max: 100 }}
        formatX={x => `${x.toFixed(0)} s`}
        series={series.map(([label, s]) => ({
          label,
          xs: s.map(x => x.timestamp - t0),
          ys: s.map(x => x.utilization)
        }))}
      />
      <LineChart
        title="memory used"
        formatY={formatBytes}
        formatX={x => `${x.toFixed(0)} s`}
        series={series.map(([label, s]) => ({
          label,
          xs: s.map(x => x.timestamp - t0),
          ys: s.map(x => x.memory_used)
        }))}
      />
    </Section>
  );
}

function Environment(props: { run: IRunDetail }): JSX.Element {
  const env = props.run.environment;
  const git = props.run.git;
  if (!env) {
    return <div className="pk-muted">no environment recorded</div>;
  }
  const packages = Object.entries(env.packages ?? {});
  const summary = {
    python: env.python?.version,
    platform: env.platform,
    host: env.hostname,
    torch: env.torch?.version,
    cuda: env.torch?.cuda,
    'git commit': git?.commit,
    'git branch': git?.branch,
    'uncommitted changes': git ? Boolean(git.dirty) : undefined
  };
  return (
    <div>
      <KeyValues values={known(summary)} />
      <details className="pk-packages">
        <summary>{packages.length} packages</summary>
        <table className="pk-kv">
          <tbody>
            {packages.map(([name, version]) => (
              <tr key={name}>
                <th>{name}</th>
                <td>{version}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </details>
    </div>
  );
}

/** The entries that hold a value (an environment without torch or git just does not list them). */
function known(values: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== null && v !== undefined));
}
