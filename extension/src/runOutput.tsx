/**
 * The in-cell run status: a renderer for `application/vnd.pykernel-ext.run+json`, the output a tracked cell
 * ends with and a `--no-wait` remote cell starts with. It shows the run as the store has it now (status,
 * time, latest metrics), live through the Runs panel's push channel, with a link that opens the run; when
 * the run has ended differently from what the output recorded (a job that finished after its cell), it
 * writes the final state back into the output, so the saved notebook holds it for every viewer.
 */
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { ReactWidget } from '@jupyterlab/ui-components';
import * as React from 'react';

import { IRunsAPI, IRunSummary } from './api';
import { FINAL, IRunSnapshot, merged, outdated, RUN_MIME, shownStatus, statusLine } from './runStatus';
import { RunsModel } from './runsModel';

export { RUN_MIME } from './runStatus';

/**
 * Summaries of the runs shown in cell outputs: fetched together (one request for a notebook's worth of
 * outputs) and kept current by the Runs panel's push channel.
 */
export class RunSummaries {
  private _known = new Map<string, IRunSummary>();
  private _wanted = new Set<string>();
  private _listeners = new Map<string, Set<(run: IRunSummary) => void>>();
  private _timer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly api: IRunsAPI,
    runs: RunsModel
  ) {
    runs.runsChanged.connect((_, changed) => changed.forEach(run => this._update(run)), this);
  }

  watch(id: string, listener: (run: IRunSummary) => void): () => void {
    const listeners = this._listeners.get(id) ?? new Set();
    listeners.add(listener);
    this._listeners.set(id, listeners);
    const known = this._known.get(id);
    if (known) {
      listener(known);
    } else {
      this._wanted.add(id);
      this._timer ??= setTimeout(() => void this._fetch(), 50);
    }
    return () => listeners.delete(listener);
  }

  private async _fetch(): Promise<void> {
    this._timer = null;
    const ids = [...this._wanted].slice(0, 1000);
    ids.forEach(id => this._wanted.delete(id));
    if (this._wanted.size) {
      this._timer = setTimeout(() => void this._fetch(), 50); // more outputs than one request takes
    }
    try {
      const page = await this.api.listRuns({ ids: ids.join(','), limit: ids.length, count: false });
      page.runs.forEach(run => this._update(run));
    } catch (error) {
      console.warn('pykernel-ext: run status not loaded', error); // the output keeps its recorded state
    }
  }

  private _update(run: IRunSummary): void {
    this._known.set(run.id, run);
    this._listeners.get(run.id)?.forEach(listener => listener(run));
  }
}

function StatusView(props: {
  snapshot: IRunSnapshot;
  summaries: RunSummaries;
  onOpen: (id: string) => void;
  onFinal: (current: IRunSnapshot) => void;
}): JSX.Element {
  const [summary, setSummary] = React.useState<IRunSummary | undefined>(undefined);
  const [now, setNow] = React.useState(Date.now());
  React.useEffect(() => props.summaries.watch(props.snapshot.run_id, setSummary), [props.snapshot.run_id]);
  const current = merged(props.snapshot, summary);
  const status = shownStatus(current);
  React.useEffect(() => {
    if (FINAL.has(status)) {
      if (outdated(props.snapshot, current)) {
        props.onFinal(current);
      }
      return;
    }
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, [status, summary]);
  return (
    <div className="pk-run-output" data-run-id={current.run_id} data-status={status}>
      <span className={`pk-status pk-status-${status}`} />
      <span className="pk-run-output-line">{statusLine(current, now)}</span>
      <button className="pk-link pk-run-output-open" onClick={() => props.onOpen(current.run_id)} title="Show this run in the Runs sidebar">
        open in Runs
      </button>
    </div>
  );
}

/** The renderer JupyterLab creates for each such output. */
export class RunStatusRenderer extends ReactWidget implements IRenderMime.IRenderer {
  private _snapshot: IRunSnapshot | null = null;
  private _model: IRenderMime.IMimeModel | null = null;

  constructor(
    private readonly summaries: RunSummaries,
    private readonly onOpen: (id: string) => void
  ) {
    super();
    this.addClass('pk-run-output-host');
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    this._model = model;
    this._snapshot = model.data[RUN_MIME] as unknown as IRunSnapshot;
    this.update();
  }

  render(): JSX.Element | null {
    const snapshot = this._snapshot;
    if (!snapshot?.run_id) {
      return <div className="pk-muted">pykernel-ext: this output names no run</div>;
    }
    return (
      <StatusView
        key={snapshot.run_id}
        snapshot={snapshot}
        summaries={this.summaries}
        onOpen={this.onOpen}
        onFinal={current => this._writeBack(current)}
      />
    );
  }

  /** Record the final state in the output itself (text for other viewers too). */
  private _writeBack(current: IRunSnapshot): void {
    const model = this._model;
    if (!model) {
      return;
    }
    const line = statusLine(current);
    model.setData({
      data: { ...model.data, [RUN_MIME]: current as never, 'text/plain': line, 'text/html': escapeHtml(line) }
    });
  }
}

function escapeHtml(text: string): string {
  return `<span class="pykernel-ext-run-summary" style="font-family:monospace;font-size:12px">${text.replace(
    /[&<>"']/g,
    c => `&#${c.charCodeAt(0)};`
  )}</span>`;
}

/** The renderer factory: safe (it renders text only), preferred over the HTML fallback. */
export function runStatusFactory(summaries: RunSummaries, onOpen: (id: string) => void): IRenderMime.IRendererFactory {
  return {
    safe: true,
    mimeTypes: [RUN_MIME],
    defaultRank: 10,
    createRenderer: () => new RunStatusRenderer(summaries, onOpen)
  };
}
