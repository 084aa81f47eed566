/**
 * The left sidebar: filters, search and a virtualized run table (only the rows in view exist in the DOM;
 * their pages come from the server as the table scrolls, so 100,000 runs scroll like 100).
 */
import * as React from 'react';

import { IRunSummary } from '../api';
import { elapsed, formatAge, formatDuration, formatTime, shortId } from '../format';
import { IRunFilters, RunsModel } from '../model';

export const ROW_HEIGHT = 26;
const OVERSCAN = 10;
const STATUSES = ['running', 'ok', 'failed', 'interrupted'];
const KINDS = ['cell', 'script', 'remote', 'notebook', 'mlflow'];

export interface IRunsPanelProps {
  model: RunsModel;
  onOpenRun: (id: string) => void;
  onCompare: (ids: string[]) => void;
  onOpenGpus: () => void;
  /** The notebook in focus, relative to the Jupyter root (for the "this notebook" filter). */
  currentNotebook: () => string | null;
}

export function RunsPanel(props: IRunsPanelProps): JSX.Element {
  const { model } = props;
  const selected = model.selection;
  return (
    <div className="pk-runs">
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
        <span className="pk-count">
          {model.total === null ? 'loading…' : `${model.total.toLocaleString()} runs`}
        </span>
        <button
          className="pk-button pk-compare-button"
          disabled={selected.length < 2}
          onClick={() => props.onCompare([...selected])}
          title="Select two or more runs with their checkboxes"
        >
          Compare{selected.length ? ` (${selected.length})` : ''}
        </button>
        {selected.length ? (
          <button className="pk-button" onClick={() => model.clearSelection()}>
            Clear
          </button>
        ) : null}
      </div>
      {model.error ? <div className="pk-error">{model.error}</div> : null}
      <RunTable model={model} onOpenRun={props.onOpenRun} />
    </div>
  );
}

function Filters(props: { model: RunsModel; currentNotebook: () => string | null }): JSX.Element {
  const { model } = props;
  const f = model.filters;
  const set = (patch: Partial<IRunFilters>) => model.setFilters(patch);
  return (
    <div className="pk-filters">
      <input
        className="pk-input pk-search"
        type="search"
        placeholder="Search name, notebook, params, errors…"
        value={f.q}
        onChange={e => set({ q: e.currentTarget.value })}
      />
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
        <input
          className="pk-input pk-tag"
          placeholder="tag or key=value"
          value={f.tag}
          onChange={e => set({ tag: e.currentTarget.value })}
        />
      </div>
      <div className="pk-filter-row">
        <input
          className="pk-input pk-notebook"
          placeholder="notebook path"
          value={f.notebook}
          onChange={e => set({ notebook: e.currentTarget.value })}
        />
        <button
          className="pk-button"
          title="Only runs of the notebook in focus"
          onClick={() => set({ notebook: props.currentNotebook() ?? '' })}
        >
          This notebook
        </button>
      </div>
    </div>
  );
}

const COLUMNS: { key: string; label: string; sort?: string }[] = [
  { key: 'select', label: '' },
  { key: 'status', label: '', sort: 'status' },
  { key: 'name', label: 'Name', sort: 'name' },
  { key: 'started', label: 'Age', sort: 'started_at' },
  { key: 'duration', label: 'Time', sort: 'duration_s' }
];

function RunTable(props: { model: RunsModel; onOpenRun: (id: string) => void }): JSX.Element {
  const { model } = props;
  const ref = React.useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = React.useState(0);
  const [height, setHeight] = React.useState(400);
  React.useEffect(() => {
    const node = ref.current;
    if (!node) {
      return;
    }
    const observer = new ResizeObserver(() => setHeight(node.clientHeight));
    observer.observe(node);
    setHeight(node.clientHeight);
    return () => observer.disconnect();
  }, []);
  React.useEffect(() => {
    if (ref.current) {
      ref.current.scrollTop = 0; // a new query starts at its top
    }
    setScrollTop(0);
  }, [model.generation]);
  const total = model.total ?? 0;
  const first = Math.max(0, Math.floor(scrollTop / ROW_HEIGHT) - OVERSCAN);
  const last = Math.max(first, Math.min(total - 1, Math.ceil((scrollTop + height) / ROW_HEIGHT) + OVERSCAN));
  React.useEffect(() => model.setVisibleRange(first, last), [model, first, last, model.generation]);
  const rows: JSX.Element[] = [];
  for (let i = first; i <= last && i < total; i++) {
    const run = model.rowAt(i);
    rows.push(
      run ? (
        <RunRow key={run.id} index={i} run={run} model={model} onOpenRun={props.onOpenRun} />
      ) : (
        <div key={`placeholder-${i}`} className="pk-row pk-row-loading" style={{ top: i * ROW_HEIGHT }}>
          …
        </div>
      )
    );
  }
  const f = model.filters;
  return (
    <div className="pk-table">
      <div className="pk-table-head">
        {COLUMNS.map(c => (
          <span
            key={c.key}
            className={`pk-col pk-col-${c.key}${c.sort ? ' pk-sortable' : ''}`}
            onClick={() =>
              c.sort &&
              model.setFilters({ sort: c.sort, order: f.sort === c.sort && f.order === 'desc' ? 'asc' : 'desc' })
            }
          >
            {c.label}
            {c.sort && f.sort === c.sort ? (f.order === 'desc' ? ' ▾' : ' ▴') : ''}
          </span>
        ))}
      </div>
      <div className="pk-table-body" ref={ref} onScroll={e => setScrollTop(e.currentTarget.scrollTop)}>
        <div className="pk-table-spacer" style={{ height: total * ROW_HEIGHT }}>
          {rows}
        </div>
        {model.total === 0 ? (
          <div className="pk-empty">
            {model.filtered
              ? 'No run matches these filters.'
              : 'No runs yet. Run a cell with %%track after %load_ext pykernel_ext.'}
          </div>
        ) : null}
      </div>
    </div>
  );
}

function RunRow(props: {
  index: number;
  run: IRunSummary;
  model: RunsModel;
  onOpenRun: (id: string) => void;
}): JSX.Element {
  const { run, model } = props;
  const title = [
    run.name ?? run.id,
    `id ${run.id}`,
    run.notebook ? `notebook ${run.notebook}` : '',
    `started ${formatTime(run.started_at)}`,
    run.error_message ? `${run.error_type}: ${run.error_message}` : ''
  ]
    .filter(Boolean)
    .join('\n');
  return (
    <div
      className={`pk-row${model.isSelected(run.id) ? ' pk-selected' : ''}`}
      style={{ top: props.index * ROW_HEIGHT }}
      data-run-id={run.id}
      title={title}
      onClick={() => props.onOpenRun(run.id)}
    >
      <span className="pk-col pk-col-select">
        <input
          type="checkbox"
          aria-label={`select run ${shortId(run.id)}`}
          checked={model.isSelected(run.id)}
          onClick={e => e.stopPropagation()}
          onChange={() => model.toggleSelected(run.id)}
        />
      </span>
      <span className="pk-col pk-col-status">
        <span className={`pk-status pk-status-${run.status}`} title={run.status} />
      </span>
      <span className="pk-col pk-col-name">
        {run.name ?? shortId(run.id)}
        {run.kind !== 'cell' ? <span className="pk-kind">{run.kind}</span> : null}
      </span>
      <span className="pk-col pk-col-started">{formatAge(run.started_at, model.now)}</span>
      <span className="pk-col pk-col-duration">{formatDuration(elapsed(run, model.now))}</span>
    </div>
  );
}
