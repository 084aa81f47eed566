/**
 * The left sidebar: search (with its syntax in the help), filters, the column picker, actions on the
 * selected runs and the run table.
 */
import * as React from 'react';

import { IRunKeys, KINDS, STATUSES } from '../api';
import { columnId, ColumnsModel, IColumn, MetricStat } from '../columns';
import { plural } from '../format';
import { IRunFilters, messageOf, RunsModel } from '../model';
import { RunTable } from './RunTable';


export const SEARCH_HELP: [string, string][] = [
  ['lr=0.1', 'a parameter, metric or tag equals a value'],
  ['lr>0.01  loss<=0.2', 'compare numbers: <, <=, >, >=, !='],
  ['min(loss)<0.3', "a metric's smallest (or max(...) largest) value"],
  ['status:failed  kind:remote', `status (${STATUSES.join(', ')}) or kind (${KINDS.join(', ')})`],
  ['tag:example=spirals', 'a tag (tag:team for any value)'],
  ['is:starred  is:archived', 'your starred runs; archived runs (hidden otherwise)'],
  ['notebook:sweep  name:train', 'part of the notebook path or the name'],
  ['free words', 'all must appear in the name, notebook, id, error, tags, parameters or note'],
  ['params.lr=0.1  metrics.loss<1', 'look in one place only; quote values with spaces: name:"my run"']
];

export interface IRunsPanelProps {
  model: RunsModel;
  columns: ColumnsModel;
  onOpenRun: (id: string) => void;
  onCompare: (ids: string[]) => void;
  /** Compare every run the current filters list (up to 1,000). */
  onCompareAll: () => void;
  onOpenGpus: () => void;
  onArchive: (ids: string[]) => Promise<void>;
  onDelete: (ids: string[]) => Promise<void>;
  /** The notebook in focus, relative to the Jupyter root (for the "this notebook" filter). */
  currentNotebook: () => string | null;
}

export function RunsPanel(props: IRunsPanelProps): JSX.Element {
  const { model } = props;
  const selected = model.selection;
  const [picking, setPicking] = React.useState(false);
  return (
    <div className="pk-runs" data-q={model.applied.q.trim()} data-loading={model.total === null}>
      <div className="pk-runs-header">
        <span className="pk-title">Runs</span>
        <span className={`pk-live pk-live-${model.live}`} title={`updates: ${model.live}`}>
          {model.live === 'push' ? 'live' : model.live === 'polling' ? 'polling' : ''}
        </span>
        <button className="pk-button" onClick={props.onOpenGpus} title="GPU utilization">
          GPUs
        </button>
      </div>
      <Filters model={model} currentNotebook={props.currentNotebook} />
      <div className="pk-runs-status">
        <span className="pk-count" title={model.nested ? 'top-level runs (cells under their notebook run)' : 'matching runs'}>
          {model.total === null ? 'loading…' : plural(model.total, 'run')}
        </span>
        <button className={`pk-button pk-columns-button${picking ? ' pk-active' : ''}`} onClick={() => setPicking(!picking)} title="Choose parameter and metric columns">
          Columns
        </button>
        <button className="pk-button pk-compare-all" disabled={!model.total || model.total < 2} onClick={props.onCompareAll} title="Plot and compare the runs listed (up to 1,000)">
          Plot all
        </button>
      </div>
      {picking ? <ColumnPicker model={model} columns={props.columns} onClose={() => setPicking(false)} /> : null}
      <div className="pk-runs-status pk-selection-bar">
        <button
          className="pk-button pk-compare-button"
          disabled={selected.length < 2}
          onClick={() => props.onCompare([...selected])}
          title="Select two or more runs with their checkboxes"
        >
          Compare{selected.length ? ` (${selected.length})` : ''}
        </button>
        {selected.length ? (
          <>
            <button className="pk-button pk-archive-selected" onClick={() => void props.onArchive([...selected])}>
              Archive
            </button>
            <button className="pk-button pk-danger pk-delete-selected" onClick={() => void props.onDelete([...selected])}>
              Delete…
            </button>
            <button className="pk-button" onClick={() => model.clearSelection()}>
              Clear
            </button>
          </>
        ) : null}
      </div>
      {model.error ? <div className="pk-error">{model.error}</div> : null}
      <RunTable model={model} columns={props.columns} onOpenRun={props.onOpenRun} />
    </div>
  );
}

function Filters(props: { model: RunsModel; currentNotebook: () => string | null }): JSX.Element {
  const { model } = props;
  const f = model.filters;
  const [help, setHelp] = React.useState(false);
  const set = (patch: Partial<IRunFilters>) => model.setFilters(patch);
  return (
    <div className="pk-filters">
      <div className="pk-filter-row">
        <input
          className="pk-input pk-search"
          type="search"
          placeholder="lr>0.01 status:failed words…"
          title={SEARCH_HELP.map(([example, meaning]) => `${example}: ${meaning}`).join('\n')}
          aria-label="search runs"
          value={f.q}
          onChange={e => set({ q: e.currentTarget.value })}
        />
        <button className={`pk-button pk-help-button${help ? ' pk-active' : ''}`} aria-label="search syntax" onClick={() => setHelp(!help)}>
          ?
        </button>
      </div>
      {help ? (
        <dl className="pk-search-help">
          {SEARCH_HELP.map(([example, meaning]) => (
            <React.Fragment key={example}>
              <dt>
                <code>{example}</code>
              </dt>
              <dd>{meaning}</dd>
            </React.Fragment>
          ))}
        </dl>
      ) : null}
      <div className="pk-filter-row">
        <select className="pk-select" aria-label="status" value={f.status} onChange={e => set({ status: e.currentTarget.value })}>
          <option value="">any status</option>
          {STATUSES.map(s => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
        <select className="pk-select" aria-label="kind" value={f.kind} onChange={e => set({ kind: e.currentTarget.value })}>
          <option value="">any kind</option>
          {KINDS.map(k => (
            <option key={k} value={k}>
              {k}
            </option>
          ))}
        </select>
        <label className="pk-nested" title="Cells under their notebook run, a sweep's runs under one row (while nothing filters)">
          <input type="checkbox" className="pk-nested-toggle" checked={f.nested} onChange={e => set({ nested: e.currentTarget.checked })} />
          nested
        </label>
      </div>
      <div className="pk-filter-row">
        <input className="pk-input pk-tag" placeholder="tag or key=value" value={f.tag} onChange={e => set({ tag: e.currentTarget.value })} />
        <input className="pk-input pk-notebook" placeholder="notebook path" value={f.notebook} onChange={e => set({ notebook: e.currentTarget.value })} />
        <button className="pk-button" title="Only runs of the notebook in focus" onClick={() => set({ notebook: props.currentNotebook() ?? '' })}>
          This nb
        </button>
      </div>
    </div>
  );
}

/** Parameter and metric keys of the listed runs, each metric as last, min or max. */
function ColumnPicker(props: { model: RunsModel; columns: ColumnsModel; onClose: () => void }): JSX.Element {
  const [keys, setKeys] = React.useState<IRunKeys | null>(null);
  const [error, setError] = React.useState<string | null>(null);
  const [filter, setFilter] = React.useState('');
  React.useEffect(() => {
    props.model.api.runKeys(props.model.filterQuery()).then(setKeys, e => setError(messageOf(e)));
  }, [props.model.generation]);
  const matches = (key: string) => key.toLowerCase().includes(filter.toLowerCase());
  const toggle = (column: IColumn) => props.columns.toggle(column);
  const stats: MetricStat[] = ['last', 'min', 'max'];
  return (
    <div className="pk-column-picker">
      <div className="pk-filter-row">
        <input className="pk-input pk-column-filter" placeholder="find a key" value={filter} onChange={e => setFilter(e.currentTarget.value)} />
        <button className="pk-button" onClick={props.onClose}>
          Done
        </button>
      </div>
      {error ? <div className="pk-error">{error}</div> : null}
      {!keys && !error ? <div className="pk-muted">loading…</div> : null}
      {keys ? (
        <div className="pk-picker-lists">
          <div className="pk-picker-title">Parameters</div>
          {keys.params.filter(k => matches(k.key)).map(k => {
            const column: IColumn = { source: 'param', key: k.key };
            return (
              <label key={k.key} className="pk-picker-item" data-column={columnId(column)}>
                <input type="checkbox" checked={props.columns.has(column)} onChange={() => toggle(column)} />
                <span className="pk-picker-key">{k.key}</span>
                <span className="pk-muted">{k.count}</span>
              </label>
            );
          })}
          <div className="pk-picker-title">Metrics (last · min · max)</div>
          {keys.metrics.filter(k => matches(k.key)).map(k => (
            <div key={k.key} className="pk-picker-item">
              {stats.map(stat => {
                const column: IColumn = { source: 'metric', key: k.key, stat };
                return (
                  <input
                    key={stat}
                    type="checkbox"
                    title={`${k.key} (${stat})`}
                    data-column={columnId(column)}
                    checked={props.columns.has(column)}
                    onChange={() => toggle(column)}
                  />
                );
              })}
              <span className="pk-picker-key">{k.key}</span>
              <span className="pk-muted">{k.count}</span>
            </div>
          ))}
          {!keys.params.length && !keys.metrics.length ? <div className="pk-muted">the listed runs record no parameters or metrics</div> : null}
          {keys.sampled ? <div className="pk-muted">keys of the newest {keys.runs_examined.toLocaleString()} runs</div> : null}
        </div>
      ) : null}
    </div>
  );
}
