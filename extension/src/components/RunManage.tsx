/**
 * What a person records on a run and does to it, in its detail view: rename, star, archive, delete, a
 * plain-text note, tags; and the parts of a run shown as lists: child runs, outputs, resources, hardware.
 * Every user string is a React text node.
 */
import * as React from 'react';

import { IRunDetail, IRunPatch, IRunSummary } from '../api';
import { formatBytes, formatDuration, formatNumber, formatValue, shortId } from '../format';

export function RunActions(props: {
  run: IRunDetail;
  onPatch: (patch: IRunPatch) => Promise<void>;
  onDelete: () => Promise<void>;
}): JSX.Element {
  const { run } = props;
  const [renaming, setRenaming] = React.useState(false);
  const [name, setName] = React.useState(run.name ?? '');
  const [busy, setBusy] = React.useState(false);
  const act = async (action: () => Promise<void>) => {
    setBusy(true);
    try {
      await action();
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="pk-run-actions">
      {renaming ? (
        <form
          className="pk-rename"
          onSubmit={e => {
            e.preventDefault();
            void act(async () => {
              await props.onPatch({ name });
              setRenaming(false);
            });
          }}
        >
          <input className="pk-input pk-rename-input" value={name} maxLength={200} autoFocus onChange={e => setName(e.currentTarget.value)} />
          <button className="pk-button" type="submit" disabled={busy || !name.trim()}>
            Save
          </button>
          <button className="pk-button" type="button" onClick={() => setRenaming(false)}>
            Cancel
          </button>
        </form>
      ) : (
        <button className="pk-button pk-rename-button" onClick={() => (setName(run.name ?? ''), setRenaming(true))}>
          Rename
        </button>
      )}
      <button
        className="pk-button pk-star-button"
        disabled={busy}
        aria-pressed={Boolean(run.starred)}
        onClick={() => void act(() => props.onPatch({ starred: !run.starred }))}
      >
        {run.starred ? '★ Starred' : '☆ Star'}
      </button>
      <button
        className="pk-button pk-archive-button"
        disabled={busy}
        title={run.archived ? 'Show it in the default views again' : 'Hide it from the default views (search is:archived to find it)'}
        onClick={() => void act(() => props.onPatch({ archived: !run.archived }))}
      >
        {run.archived ? 'Unarchive' : 'Archive'}
      </button>
      <button className="pk-button pk-danger pk-delete-button" disabled={busy} onClick={() => void act(props.onDelete)}>
        Delete…
      </button>
    </div>
  );
}

export function NoteEditor(props: { run: IRunDetail; onSave: (note: string) => Promise<void> }): JSX.Element {
  const saved = props.run.note ?? '';
  const [editing, setEditing] = React.useState(false);
  const [text, setText] = React.useState(saved);
  if (!editing) {
    return (
      <div className="pk-note">
        {saved ? <div className="pk-note-text">{saved}</div> : null}
        <button className="pk-link pk-note-edit" onClick={() => (setText(saved), setEditing(true))}>
          {saved ? 'Edit note' : 'Add a note'}
        </button>
      </div>
    );
  }
  return (
    <div className="pk-note">
      <textarea
        className="pk-input pk-note-input"
        rows={4}
        maxLength={10000}
        value={text}
        placeholder="What this run was for, what to check next… (plain text)"
        onChange={e => setText(e.currentTarget.value)}
      />
      <div className="pk-note-buttons">
        <button className="pk-button pk-note-save" onClick={() => void props.onSave(text).then(() => setEditing(false))}>
          Save note
        </button>
        <button className="pk-button" onClick={() => setEditing(false)}>
          Cancel
        </button>
      </div>
    </div>
  );
}

export function TagEditor(props: { run: IRunDetail; onPatch: (patch: IRunPatch) => Promise<void> }): JSX.Element {
  const [draft, setDraft] = React.useState('');
  const [problem, setProblem] = React.useState<string | null>(null);
  const tags = Object.entries(props.run.tags ?? {});
  const add = () => {
    const [key, ...rest] = draft.split('=');
    if (!key.trim() || !rest.length) {
      setProblem('write KEY=VALUE, e.g. stage=final');
      return;
    }
    setProblem(null);
    void props.onPatch({ tags: { set: { [key.trim()]: rest.join('=') } } }).then(() => setDraft(''));
  };
  return (
    <div className="pk-tags">
      {tags.map(([key, value]) => (
        <span key={key} className="pk-tag" title={`${key}=${value}`}>
          {key}={value}
          <button className="pk-tag-remove" aria-label={`remove tag ${key}`} onClick={() => void props.onPatch({ tags: { remove: [key] } })}>
            ×
          </button>
        </span>
      ))}
      <form
        className="pk-tag-add"
        onSubmit={e => {
          e.preventDefault();
          add();
        }}
      >
        <input className="pk-input pk-tag-input" placeholder="key=value" value={draft} onChange={e => setDraft(e.currentTarget.value)} />
        <button className="pk-button" type="submit" disabled={!draft.trim()}>
          Add tag
        </button>
      </form>
      {problem ? <div className="pk-error">{problem}</div> : null}
    </div>
  );
}

/** A notebook run's cells: name, status, time and their last metric values. */
export function ChildRuns(props: { runs: IRunSummary[]; total: number; onOpenRun: (id: string) => void }): JSX.Element {
  const metricKeys = [...new Set(props.runs.flatMap(r => Object.keys(r.metrics ?? {})))].slice(0, 4);
  return (
    <div className="pk-scroll-x">
      <table className="pk-kv pk-children">
        <thead>
          <tr>
            <th>run</th>
            <th>status</th>
            <th>time</th>
            {metricKeys.map(k => (
              <th key={k}>{k}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {props.runs.map(child => (
            <tr key={child.id} className="pk-clickable" onClick={() => props.onOpenRun(child.id)} title={child.name ?? child.id}>
              <th>
                <span className={`pk-status pk-status-${child.status}`} /> {child.name ?? shortId(child.id)}
              </th>
              <td>{child.status}</td>
              <td>{formatDuration(child.duration_s)}</td>
              {metricKeys.map(k => (
                <td key={k}>{typeof child.metrics?.[k] === 'number' ? formatNumber(child.metrics[k] as number) : ''}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
      {props.total > props.runs.length ? <div className="pk-muted">the first {props.runs.length} of {props.total}</div> : null}
    </div>
  );
}

export function Outputs(props: { run: IRunDetail }): JSX.Element {
  const outputs = props.run.outputs ?? [];
  if (!outputs.length) {
    return <div className="pk-muted">no outputs recorded</div>;
  }
  return (
    <table className="pk-kv pk-outputs">
      <tbody>
        {outputs.map((o, i) => (
          <tr key={`${o.name}-${i}`}>
            <th>{o.name}</th>
            <td className="pk-muted">{o.type ?? ''}</td>
            <td className={o.hash ? 'pk-hash' : undefined}>{o.hash ?? formatValue(o.value)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

interface IHardwareRecord {
  cpu_model?: string;
  cpu_logical_cores?: number;
  cpu_physical_cores?: number;
  memory_total_bytes?: number;
  gpu?: { available?: boolean; reason?: string | null; gpus?: { name?: string; memory_total_bytes?: number }[] };
}

interface IResourcesRecord {
  peak_rss_bytes?: number;
  cpu_seconds?: number;
  gpu_summary?: Record<
    string,
    { name?: string; utilization_mean?: number | null; utilization_max?: number; memory_used_max_bytes?: number } | undefined
  >;
}

export function Hardware(props: { run: IRunDetail }): JSX.Element {
  const hardware = (props.run.hardware ?? {}) as IHardwareRecord;
  const resources = (props.run.resources ?? {}) as IResourcesRecord;
  const gpus = hardware.gpu?.gpus ?? [];
  const rows: [string, string][] = [];
  const add = (label: string, value: string | undefined | null) => value && rows.push([label, value]);
  add('peak memory', resources.peak_rss_bytes ? formatBytes(resources.peak_rss_bytes) : null);
  add('CPU time', resources.cpu_seconds !== undefined ? formatDuration(resources.cpu_seconds) : null);
  for (const [gpu, summary] of Object.entries(resources.gpu_summary ?? {})) {
    const util = summary?.utilization_mean;
    add(`GPU ${gpu}`, summary ? `${summary.name ?? ''} ${util === null || util === undefined ? '?' : formatNumber(util)}% mean ` +
      `utilization, ${formatBytes(summary.memory_used_max_bytes)} peak memory` : null);
  }
  add('CPU', hardware.cpu_model ? `${hardware.cpu_model} (${hardware.cpu_logical_cores ?? '?'} threads)` : null);
  add('memory', hardware.memory_total_bytes ? formatBytes(hardware.memory_total_bytes) : null);
  add('GPUs', gpus.length ? gpus.map(g => `${g.name ?? 'GPU'} ${formatBytes(g.memory_total_bytes)}`).join(', ')
    : `none${hardware.gpu?.reason ? ` (${hardware.gpu.reason})` : ''}`);
  add('host', props.run.host);
  return (
    <table className="pk-kv pk-hardware">
      <tbody>
        {rows.map(([label, value]) => (
          <tr key={label}>
            <th>{label}</th>
            <td>{value}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
