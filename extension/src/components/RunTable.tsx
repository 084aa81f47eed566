/**
 * The virtualized run table: only the rows in view exist in the DOM; their pages come from the server as
 * the table scrolls (pages that scroll away are cancelled). Rows expand into a notebook run's cells or a
 * sweep's runs. Name, status and selection stay in view when extra columns scroll sideways; the header
 * stays on top. Full names and details are on hover.
 */
import * as React from 'react';

import { IRunSummary } from '../api';
import { cellValue, columnId, columnLabel, columnSort, ColumnsModel, IColumn } from '../columns';
import { elapsed, formatAge, formatShortDuration, formatTime, formatValue, shortId } from '../format';
import { DisplayRow, RunsModel } from '../model';

export const ROW_HEIGHT = 26;
const HEAD_HEIGHT = 24;
const OVERSCAN = 10;
const INDENT = 14;
const VALUE_WIDTH = 64;
const KIND_LABELS: Record<string, string> = { cell: 'cell', notebook: 'nb', script: 'script', remote: 'remote' };

interface IFixedColumn {
  key: string;
  label: string;
  width: string;
  sort?: string;
  title: string;
}

// The chosen parameter and metric columns come right after the name, so the first of them is in view at
// the sidebar's default width; age and time follow them.
const LEADING: IFixedColumn[] = [
  { key: 'select', label: '', width: '20px', title: 'select runs to compare' },
  { key: 'status', label: '', width: '14px', sort: 'status', title: 'status' },
  { key: 'name', label: 'Name', width: 'minmax(104px, 1fr)', sort: 'name', title: 'name (kind before it)' }
];
const TRAILING: IFixedColumn[] = [
  { key: 'started', label: 'Age', width: '46px', sort: 'started_at', title: 'started (how long ago)' },
  { key: 'duration', label: 'Time', width: '44px', sort: 'duration_s', title: 'duration' }
];

function gridTemplate(columns: readonly IColumn[]): string {
  return [...LEADING.map(c => c.width), ...columns.map(() => `${VALUE_WIDTH}px`), ...TRAILING.map(c => c.width)].join(' ');
}

function minWidth(columns: readonly IColumn[]): number {
  return 20 + 14 + 104 + 46 + 44 + columns.length * VALUE_WIDTH + 16;
}

export interface IRunTableProps {
  model: RunsModel;
  columns: ColumnsModel;
  onOpenRun: (id: string) => void;
}

export function RunTable(props: IRunTableProps): JSX.Element {
  const { model, columns } = props;
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
  const count = model.displayCount;
  const top = Math.max(0, scrollTop - HEAD_HEIGHT);
  const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - OVERSCAN);
  const last = Math.max(first, Math.min(count - 1, Math.ceil((top + height) / ROW_HEIGHT) + OVERSCAN));
  React.useEffect(() => model.setVisibleRange(first, last), [model, first, last, model.generation, count]);
  const template = gridTemplate(columns.columns);
  const width = minWidth(columns.columns);
  const rows: JSX.Element[] = [];
  for (let i = first; i <= last && i < count; i++) {
    const row = model.displayRow(i);
    const style = { top: i * ROW_HEIGHT, gridTemplateColumns: template, minWidth: width };
    rows.push(
      row?.type === 'run' ? (
        <RunRow key={`${row.run.id}-${row.depth}`} index={i} row={row} style={style} {...props} />
      ) : (
        <div key={`placeholder-${i}`} className="pk-row pk-row-loading" style={style}>
          <span className="pk-col pk-col-loading" style={{ paddingLeft: (row?.depth ?? 0) * INDENT + 34 }}>
            {row?.type === 'loading' && row.error ? row.error : '…'}
          </span>
        </div>
      )
    );
  }
  return (
    <div className="pk-table">
      <div className="pk-table-body" ref={ref} onScroll={e => setScrollTop(e.currentTarget.scrollTop)}>
        <Head {...props} template={template} width={width} />
        <div className="pk-table-spacer" style={{ height: count * ROW_HEIGHT, minWidth: width }}>
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

function Head(props: IRunTableProps & { template: string; width: number }): JSX.Element {
  const { model } = props;
  const f = model.filters;
  const sortBy = (sort: string) =>
    model.setFilters({ sort, order: f.sort === sort && f.order === 'desc' ? 'asc' : 'desc' });
  const arrow = (sort?: string) => (sort && f.sort === sort ? (f.order === 'desc' ? ' ▾' : ' ▴') : '');
  const fixed = (c: IFixedColumn) => (
    <span
      key={c.key}
      className={`pk-col pk-col-${c.key}${c.sort ? ' pk-sortable' : ''}`}
      title={c.sort ? `${c.title}: click to sort` : c.title}
      onClick={() => c.sort && sortBy(c.sort)}
    >
      {c.label}
      {arrow(c.sort)}
    </span>
  );
  return (
    <div className="pk-table-head" style={{ gridTemplateColumns: props.template, minWidth: props.width }}>
      {LEADING.map(fixed)}
      {props.columns.columns.map(c => (
        <span
          key={columnId(c)}
          className="pk-col pk-col-value pk-sortable"
          data-column={columnId(c)}
          title={`${c.source} ${columnLabel(c)}: click to sort (runs without it last)`}
          onClick={() => sortBy(columnSort(c))}
        >
          {columnLabel(c)}
          {arrow(columnSort(c))}
        </span>
      ))}
      {TRAILING.map(fixed)}
    </div>
  );
}

function runTitle(run: IRunSummary): string {
  return [
    run.name ?? run.id,
    `${run.kind} run · ${run.status} · id ${run.id}`,
    run.notebook ? `notebook ${run.notebook}` : '',
    `started ${formatTime(run.started_at)}`,
    run.error_message ? `${run.error_type}: ${run.error_message}` : '',
    Object.keys(run.tags ?? {}).length ? `tags ${Object.entries(run.tags).map(([k, v]) => `${k}=${v}`).join(', ')}` : '',
    run.note ? `note: ${run.note}` : ''
  ]
    .filter(Boolean)
    .join('\n');
}

function RunRow(
  props: IRunTableProps & { index: number; row: Extract<DisplayRow, { type: 'run' }>; style: React.CSSProperties }
): JSX.Element {
  const { model, row } = props;
  const { run } = row;
  const [selectingSweep, setSelectingSweep] = React.useState(false);
  const selectSweep = async () => {
    setSelectingSweep(true);
    try {
      model.toggleAll((await model.sweepMembers(run.id)).map(r => r.id));
    } finally {
      setSelectingSweep(false);
    }
  };
  const selected = row.group ? model.isSweepSelected(run.id) : model.isSelected(run.id);
  const classes = ['pk-row', selected ? 'pk-selected' : '', row.group ? 'pk-row-group' : '', row.depth ? 'pk-row-nested' : '']
    .filter(Boolean)
    .join(' ');
  return (
    <div
      className={classes}
      style={props.style}
      data-run-id={run.id}
      data-depth={row.depth}
      title={row.group ? `sweep of ${run.sweep?.size} runs of one pykernel-ext run; click to expand` : runTitle(run)}
      onClick={() => (row.group ? model.toggleExpanded(run, props.index) : props.onOpenRun(run.id))}
    >
      <span className="pk-col pk-col-select">
        <input
          type="checkbox"
          aria-label={row.group ? `select the sweep's ${run.sweep?.size} runs` : `select run ${shortId(run.id)}`}
          checked={selected}
          disabled={selectingSweep}
          onClick={e => e.stopPropagation()}
          onChange={() => (row.group ? void selectSweep() : model.toggleSelected(run.id))}
        />
      </span>
      <span className="pk-col pk-col-status">
        <span className={`pk-status pk-status-${row.group ? sweepStatus(run) : run.status}`} title={run.status} />
      </span>
      <span className="pk-col pk-col-name" style={{ paddingLeft: row.depth * INDENT }}>
        {row.expandable ? (
          <button
            className="pk-expand"
            aria-label={row.expanded ? 'collapse' : 'expand'}
            aria-expanded={row.expanded}
            onClick={e => {
              e.stopPropagation();
              model.toggleExpanded(run, props.index);
            }}
          >
            {row.expanded ? '▾' : '▸'}
          </button>
        ) : (
          <span className="pk-expand-space" />
        )}
        {row.group ? (
          <span className="pk-kind pk-kind-sweep">sweep</span>
        ) : (
          <span className={`pk-kind pk-kind-${run.kind}`} title={`${run.kind} run`}>
            {KIND_LABELS[run.kind] ?? run.kind}
          </span>
        )}
        {run.starred ? <span className="pk-star-mark" title="starred">★</span> : null}
        <span className="pk-name-text">{run.name ?? shortId(run.id)}</span>
        {row.group ? <span className="pk-sweep-size">×{run.sweep?.size}</span> : null}
      </span>
      {props.columns.columns.map(c => {
        const value = row.group ? undefined : cellValue(run, c);
        const text = value === undefined ? '' : typeof value === 'number' ? compact(value) : formatValue(value);
        return (
          <span
            key={columnId(c)}
            className="pk-col pk-col-value"
            data-column={columnId(c)}
            title={value === undefined ? '' : `${columnLabel(c)} = ${formatValue(value)}`}
          >
            {text}
          </span>
        );
      })}
      <span className="pk-col pk-col-started" title={formatTime(run.started_at)}>
        {formatAge(run.started_at, model.now)}
      </span>
      <span className="pk-col pk-col-duration">{row.group ? '' : formatShortDuration(elapsed(run, model.now))}</span>
    </div>
  );
}

function compact(value: number): string {
  if (!isFinite(value)) {
    return String(value);
  }
  if (value !== 0 && (Math.abs(value) >= 1e5 || Math.abs(value) < 1e-3)) {
    return value.toExponential(1);
  }
  return Number(value.toPrecision(4)).toString();
}

/** A sweep's dot: failed when any run failed, running while any runs, else ok. */
function sweepStatus(run: IRunSummary): string {
  const statuses = run.sweep?.statuses ?? {};
  for (const status of ['failed', 'running', 'interrupted']) {
    if (statuses[status]) {
      return status;
    }
  }
  return 'ok';
}
