/**
 * Lumino widgets hosting the React views: each re-renders when its model signals a change.
 */
import { MainAreaWidget } from '@jupyterlab/apputils';
import { LabIcon, ReactWidget, UseSignal } from '@jupyterlab/ui-components';
import * as React from 'react';

import { IRunDetail, IRunPatch, IRunsAPI } from './api';
import { CompareView } from './components/CompareView';
import { GpuView } from './components/GpuView';
import { RunDetailView } from './components/RunDetail';
import { IRunsPanelProps, RunsPanel } from './components/RunsPanel';
import { GpuModel } from './gpuModel';
import { CompareModel, RunDetailModel } from './model';

const RUNS_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">' +
  '<path class="jp-icon3" fill="#616161" d="M3 4h18v2H3zm0 7h18v2H3zm0 7h12v2H3zm15-1l4 2.5-4 2.5z"/></svg>';

export const runsIcon = new LabIcon({ name: 'pykernel-ext:runs', svgstr: RUNS_SVG });

/** The left sidebar panel. */
export class RunsSidebar extends ReactWidget {
  constructor(private readonly props: IRunsPanelProps) {
    super();
    this.id = 'pykernel-ext-runs';
    this.title.icon = runsIcon;
    this.title.caption = 'Runs (pykernel-ext)';
    this.addClass('pk-sidebar');
  }

  render(): JSX.Element {
    return (
      <UseSignal signal={this.props.columns.changed}>
        {() => <UseSignal signal={this.props.model.changed}>{() => <RunsPanel {...this.props} />}</UseSignal>}
      </UseSignal>
    );
  }
}

export interface IRunDetailWidgetOptions {
  model: RunDetailModel;
  api: IRunsAPI;
  onOpenNotebook: (run: IRunDetail) => void;
  onOpenRun: (id: string) => void;
  onOpenExecuted: (run: IRunDetail) => void;
  onPatch: (run: IRunDetail, patch: IRunPatch) => Promise<void>;
  onDelete: (run: IRunDetail) => Promise<void>;
}

/** One run in full; its clock moves once a second while the run is running. */
export class RunDetailContent extends ReactWidget {
  private _timer: ReturnType<typeof setInterval>;

  constructor(readonly options: IRunDetailWidgetOptions) {
    super();
    this.addClass('pk-main');
    this._timer = setInterval(() => {
      if (this.options.model.run?.status === 'running') {
        this.update();
      }
    }, 1000);
  }

  dispose(): void {
    clearInterval(this._timer);
    this.options.model.dispose();
    super.dispose();
  }

  render(): JSX.Element {
    const { model, api } = this.options;
    return (
      <UseSignal signal={model.changed}>
        {() => (
          <RunDetailView
            model={model}
            now={Date.now()}
            artifactUrl={(id, path) => api.artifactUrl(id, path)}
            logUrl={(id, stream) => api.logUrl(id, stream)}
            onOpenNotebook={this.options.onOpenNotebook}
            onOpenRun={this.options.onOpenRun}
            onOpenExecuted={this.options.onOpenExecuted}
            onPatch={this.options.onPatch}
            onDelete={this.options.onDelete}
          />
        )}
      </UseSignal>
    );
  }
}

export class CompareContent extends ReactWidget {
  /** When the parallel coordinates last finished drawing (performance.now(); the benchmark reads it). */
  lastChartRender = 0;

  constructor(
    readonly model: CompareModel,
    private readonly onOpenRun: (id: string) => void,
    private readonly onCompareIds: (ids: string[]) => void
  ) {
    super();
    this.addClass('pk-main');
  }

  dispose(): void {
    this.model.dispose();
    super.dispose();
  }

  render(): JSX.Element {
    return (
      <UseSignal signal={this.model.changed}>
        {() => (
          <CompareView
            model={this.model}
            onOpenRun={this.onOpenRun}
            onCompareIds={this.onCompareIds}
            onChartRendered={() => {
              this.lastChartRender = performance.now();
              this.node.dataset.chartRendered = String(this.lastChartRender);
            }}
          />
        )}
      </UseSignal>
    );
  }
}

/** The GPU view; listens for samples only while it is open. */
export class GpuContent extends ReactWidget {
  constructor(readonly model: GpuModel) {
    super();
    this.addClass('pk-main');
    model.start();
  }

  dispose(): void {
    this.model.dispose();
    super.dispose();
  }

  render(): JSX.Element {
    return <UseSignal signal={this.model.changed}>{() => <GpuView model={this.model} />}</UseSignal>;
  }
}

export function mainArea<T extends ReactWidget>(content: T, id: string, label: string): MainAreaWidget<T> {
  const widget = new MainAreaWidget({ content });
  widget.id = id;
  widget.title.label = label;
  widget.title.icon = runsIcon;
  widget.title.closable = true;
  return widget;
}
