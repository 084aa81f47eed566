/**
 * pykernel-ext's JupyterLab plugin: the "Runs" sidebar, run details, comparison and the GPU view.
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget } from '@jupyterlab/apputils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';

import { IRunDetail, RunsClient } from './api';
import { GpuModel } from './gpuModel';
import { CompareModel, RunDetailModel, RunsModel } from './model';
import { CompareContent, GpuContent, mainArea, RunDetailContent, RunsSidebar } from './widgets';

export const CommandIDs = {
  showRuns: 'pykernel-ext:show-runs',
  openRun: 'pykernel-ext:open-run',
  compare: 'pykernel-ext:compare',
  gpus: 'pykernel-ext:gpus',
  openCell: 'pykernel-ext:open-notebook-cell'
};

/** Open a notebook and bring the cell with `cellId` into view (the notebook alone when it is gone). */
export async function openNotebookAtCell(
  docManager: IDocumentManager,
  path: string,
  cellId: string | null
): Promise<void> {
  const widget = docManager.openOrReveal(path);
  if (!(widget instanceof NotebookPanel)) {
    return;
  }
  await widget.context.ready;
  await widget.revealed;
  const notebook = widget.content;
  const index = cellId ? notebook.widgets.findIndex(cell => cell.model.id === cellId) : -1;
  if (index >= 0) {
    notebook.activeCellIndex = index;
    await notebook.scrollToCell(notebook.widgets[index], 'center');
  }
}

/** The main-area views, one of each kind, reused from one click to the next. */
class MainViews {
  private _detail: MainAreaWidget<RunDetailContent> | null = null;
  private _compare: MainAreaWidget<CompareContent> | null = null;
  private _gpus: MainAreaWidget<GpuContent> | null = null;

  constructor(
    private readonly app: JupyterFrontEnd,
    private readonly api: RunsClient,
    private readonly runs: RunsModel
  ) {}

  async showRun(id: string): Promise<void> {
    if (!this._detail || this._detail.isDisposed) {
      const content = new RunDetailContent({
        model: new RunDetailModel(this.api, this.runs),
        api: this.api,
        onOpenNotebook: (run: IRunDetail) =>
          void this.app.commands.execute(CommandIDs.openCell, {
            path: run.notebook_server_path ?? '',
            cellId: run.cell_id ?? ''
          }),
        onOpenRun: runId => void this.showRun(runId)
      });
      this._detail = mainArea(content, 'pykernel-ext-run', 'Run');
      this.app.shell.add(this._detail, 'main');
    }
    const widget = this._detail;
    const model = widget.content.options.model;
    widget.title.label = `Run ${id.slice(0, 8)}`;
    this.app.shell.activateById(widget.id);
    await model.load(id);
    if (model.run && model.runId === id) {
      widget.title.label = `Run: ${model.run.name ?? id.slice(0, 8)}`;
    }
  }

  async compare(ids: string[]): Promise<void> {
    if (!this._compare || this._compare.isDisposed) {
      const content = new CompareContent(new CompareModel(this.api), id => void this.showRun(id));
      this._compare = mainArea(content, 'pykernel-ext-compare', 'Compare runs');
      this.app.shell.add(this._compare, 'main');
    }
    this._compare.title.label = `Compare ${ids.length} runs`;
    this.app.shell.activateById(this._compare.id);
    await this._compare.content.model.load(ids);
  }

  showGpus(): void {
    if (!this._gpus || this._gpus.isDisposed) {
      this._gpus = mainArea(new GpuContent(new GpuModel(this.api)), 'pykernel-ext-gpus', 'GPUs');
      this.app.shell.add(this._gpus, 'main', { mode: 'split-right' });
    }
    this.app.shell.activateById(this._gpus.id);
  }
}

function activate(
  app: JupyterFrontEnd,
  docManager: IDocumentManager,
  tracker: INotebookTracker,
  palette: ICommandPalette | null,
  restorer: ILayoutRestorer | null
): void {
  const api = new RunsClient();
  const runs = new RunsModel(api);
  const views = new MainViews(app, api, runs);
  const sidebar = new RunsSidebar({
    model: runs,
    onOpenRun: id => void app.commands.execute(CommandIDs.openRun, { id }),
    onCompare: ids => void app.commands.execute(CommandIDs.compare, { ids }),
    onOpenGpus: () => void app.commands.execute(CommandIDs.gpus),
    currentNotebook: () => tracker.currentWidget?.context.path ?? null
  });
  app.shell.add(sidebar, 'left', { rank: 650 });
  restorer?.add(sidebar, sidebar.id);
  runs.connect();

  const { commands } = app;
  commands.addCommand(CommandIDs.showRuns, {
    label: 'Show Runs',
    execute: () => app.shell.activateById(sidebar.id)
  });
  commands.addCommand(CommandIDs.openRun, {
    label: 'Show Run',
    execute: args => views.showRun(String(args.id ?? ''))
  });
  commands.addCommand(CommandIDs.compare, {
    label: 'Compare Selected Runs',
    isEnabled: args => Array.isArray(args.ids) || runs.selection.length >= 2,
    execute: args => views.compare(Array.isArray(args.ids) ? (args.ids as string[]) : [...runs.selection])
  });
  commands.addCommand(CommandIDs.gpus, {
    label: 'Show GPU Utilization',
    execute: () => views.showGpus()
  });
  commands.addCommand(CommandIDs.openCell, {
    label: 'Open Run Notebook at Its Cell',
    execute: args => openNotebookAtCell(docManager, String(args.path ?? ''), (args.cellId as string) || null)
  });
  for (const command of [CommandIDs.showRuns, CommandIDs.compare, CommandIDs.gpus]) {
    palette?.addItem({ command, category: 'Runs (pykernel-ext)' });
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'pykernel-ext:plugin',
  description: 'Run history, comparison and live GPU utilization for pykernel-ext.',
  autoStart: true,
  requires: [IDocumentManager, INotebookTracker],
  optional: [ICommandPalette, ILayoutRestorer],
  activate
};

export default plugin;
