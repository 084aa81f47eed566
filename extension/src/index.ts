/**
 * pykernel-ext's JupyterLab plugin: the "Runs" sidebar, run details, comparison, the GPU view, and the
 * in-cell run status (a MIME renderer, plus links from the live status widget).
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Dialog, ICommandPalette, MainAreaWidget, showDialog } from '@jupyterlab/apputils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';

import { IRunDetail, IRunPatch, IRunSummary, RunsClient } from './api';
import { ColumnsModel } from './columns';
import { plural } from './format';
import { GpuModel } from './gpuModel';
import { CompareModel, CompareSource, compareQuery, messageOf, RunDetailModel, RunsModel } from './model';
import { runStatusFactory, RunSummaries } from './runOutput';
import { CompareContent, GpuContent, mainArea, RunDetailContent, RunsSidebar } from './widgets';

export const CommandIDs = {
  showRuns: 'pykernel-ext:show-runs',
  openRun: 'pykernel-ext:open-run',
  compare: 'pykernel-ext:compare',
  gpus: 'pykernel-ext:gpus',
  openCell: 'pykernel-ext:open-notebook-cell'
};

/** The attribute the live status widget puts on its link (widgets.py LINK_ATTRIBUTE). */
export const RUN_LINK_ATTRIBUTE = 'data-pykernel-ext-run';
const EXECUTED_FOLDER = 'pykernel-ext-runs';

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

/** The main-area views, one of each kind, reused from one click to the next; and the run actions. */
class MainViews {
  private _detail: MainAreaWidget<RunDetailContent> | null = null;
  private _compare: MainAreaWidget<CompareContent> | null = null;
  private _gpus: MainAreaWidget<GpuContent> | null = null;

  constructor(
    private readonly app: JupyterFrontEnd,
    private readonly api: RunsClient,
    private readonly runs: RunsModel,
    private readonly docManager: IDocumentManager
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
        onOpenRun: runId => void this.showRun(runId),
        onOpenExecuted: run => void this.openExecuted(run),
        onPatch: (run, patch) => this.patch(run.id, patch),
        onDelete: run => this.remove([run])
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

  async compare(source: CompareSource): Promise<void> {
    if (!this._compare || this._compare.isDisposed) {
      const content = new CompareContent(
        new CompareModel(this.api),
        id => void this.showRun(id),
        ids => void this.compare({ ids })
      );
      this._compare = mainArea(content, 'pykernel-ext-compare', 'Compare runs');
      this.app.shell.add(this._compare, 'main');
    }
    const widget = this._compare;
    widget.title.label = 'ids' in source ? `Compare ${source.ids.length} runs` : `Compare: ${source.label}`;
    this.app.shell.activateById(widget.id);
    await widget.content.model.load(source);
    widget.title.label = `Compare ${plural(widget.content.model.summaries.length, 'run')}`;
  }

  showGpus(): void {
    if (!this._gpus || this._gpus.isDisposed) {
      this._gpus = mainArea(new GpuContent(new GpuModel(this.api)), 'pykernel-ext-gpus', 'GPUs');
      this.app.shell.add(this._gpus, 'main', { mode: 'split-right' });
    }
    this.app.shell.activateById(this._gpus.id);
  }

  /** Change a run, then show the change everywhere at once (the push channel follows within a second). */
  async patch(id: string, patch: IRunPatch): Promise<void> {
    try {
      const summary = await this.api.patchRun(id, patch);
      this.runs.applyChanges([summary]);
      const detail = this._detail?.content.options.model;
      if (detail?.runId === id) {
        await detail.load(id, true);
      }
    } catch (error) {
      await showDialog({ title: 'The run was not changed', body: messageOf(error), buttons: [Dialog.okButton()] });
    }
  }

  async archive(ids: string[]): Promise<void> {
    for (const id of ids) {
      await this.patch(id, { archived: true });
    }
    this.runs.clearSelection();
    this.runs.refresh();
  }

  /** Delete runs after asking: they go with their child runs and the stored files no other run uses. */
  async remove(runs: Pick<IRunSummary, 'id' | 'name'>[]): Promise<void> {
    const names = runs.slice(0, 5).map(r => r.name ?? r.id.slice(0, 8)).join(', ');
    const answer = await showDialog({
      title: `Delete ${plural(runs.length, 'run')}?`,
      body:
        `${names}${runs.length > 5 ? ', …' : ''} will be deleted with their child runs, and the logs, notebooks and ` +
        'artifacts no other run uses are removed from the store. This cannot be undone; Archive hides a run instead.',
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
    });
    if (!answer.button.accept) {
      return;
    }
    const deleted: string[] = [];
    try {
      for (const run of runs) {
        deleted.push(...(await this.api.deleteRun(run.id)).deleted);
      }
    } catch (error) {
      await showDialog({ title: 'Deleting failed', body: messageOf(error), buttons: [Dialog.okButton()] });
    }
    this.runs.forget(deleted);
    if (this._detail && deleted.includes(this._detail.content.options.model.runId ?? '')) {
      this._detail.dispose();
    }
  }

  /** The executed notebook of a notebook run: its output file, or a copy written from the stored one. */
  async openExecuted(run: IRunDetail): Promise<void> {
    if (run.executed_notebook_server_path) {
      this.docManager.openOrReveal(run.executed_notebook_server_path);
      return;
    }
    try {
      const content = await this.api.executedNotebook(run.id);
      const contents = this.app.serviceManager.contents;
      await contents.get(EXECUTED_FOLDER, { content: false }).catch(() =>
        contents.save(EXECUTED_FOLDER, { type: 'directory' })
      );
      const stem = (run.name ?? 'run').replace(/[^A-Za-z0-9._-]+/g, '-').slice(0, 60);
      const path = `${EXECUTED_FOLDER}/${stem}-${run.id.slice(0, 8)}-executed.ipynb`;
      await contents.save(path, { type: 'notebook', format: 'json', content });
      this.docManager.openOrReveal(path);
    } catch (error) {
      await showDialog({ title: 'Cannot open the executed notebook', body: messageOf(error), buttons: [Dialog.okButton()] });
    }
  }
}

function activate(
  app: JupyterFrontEnd,
  docManager: IDocumentManager,
  tracker: INotebookTracker,
  palette: ICommandPalette | null,
  restorer: ILayoutRestorer | null,
  rendermime: IRenderMimeRegistry | null
): void {
  const api = new RunsClient();
  const runs = new RunsModel(api);
  const columns = new ColumnsModel();
  const views = new MainViews(app, api, runs, docManager);
  runs.setWithStats(columns.needsStats);
  columns.changed.connect(() => runs.setWithStats(columns.needsStats));
  api.runKeys({ top_level: true }).then(
    keys => columns.suggest(keys),
    error => console.warn('pykernel-ext: no column suggestions', error)
  );
  const sidebar = new RunsSidebar({
    model: runs,
    columns,
    onOpenRun: id => void app.commands.execute(CommandIDs.openRun, { id }),
    onCompare: ids => void app.commands.execute(CommandIDs.compare, { ids }),
    onCompareAll: () => void views.compare(compareQuery(runs, runs.filtered ? 'the listed runs' : 'all runs')),
    onOpenGpus: () => void app.commands.execute(CommandIDs.gpus),
    onArchive: ids => views.archive(ids),
    onDelete: ids => views.remove(ids.map(id => ({ id, name: null }))),
    currentNotebook: () => tracker.currentWidget?.context.path ?? null
  });
  app.shell.add(sidebar, 'left', { rank: 650 });
  restorer?.add(sidebar, sidebar.id);
  runs.connect();

  const revealRun = (id: string) => {
    app.shell.activateById(sidebar.id);
    void views.showRun(id);
  };
  rendermime?.addFactory(runStatusFactory(new RunSummaries(api, runs), revealRun), 10);
  // The live status widget (an ipywidget HTML, widgets.py) links to its run with a data attribute.
  document.addEventListener(
    'click',
    event => {
      const link = (event.target as Element | null)?.closest?.(`[${RUN_LINK_ATTRIBUTE}]`);
      const id = link?.getAttribute(RUN_LINK_ATTRIBUTE);
      if (id && /^[0-9a-f]{1,64}$/.test(id)) {
        event.preventDefault();
        event.stopPropagation();
        revealRun(id);
      }
    },
    true
  );

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
    execute: args => views.compare({ ids: Array.isArray(args.ids) ? (args.ids as string[]) : [...runs.selection] })
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
  optional: [ICommandPalette, ILayoutRestorer, IRenderMimeRegistry],
  activate
};

export default plugin;
