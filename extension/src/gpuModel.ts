/**
 * GPU state for the GPU view: the latest report per host and a short history per GPU, refreshed every second
 * by the push channel (or by polling while it is down).
 */
import { ISignal, Signal } from '@lumino/signaling';

import { IEventStream, IGpuHost, IGpuReport, IGpuSample, IRunsAPI } from './api';
import { Liveness, messageOf } from './model';

/** The recent readings of one GPU. */
export interface IGpuTrace {
  key: string;
  host: string | null;
  worker: string | null;
  source: 'local' | 'dask';
  latest: IGpuSample;
  timestamps: number[];
  utilization: (number | null)[];
  memoryUsed: (number | null)[];
}

export function gpuKey(host: IGpuHost, gpu: IGpuSample): string {
  return `${host.source}|${host.worker ?? host.host ?? ''}|${gpu.uuid || gpu.index}`;
}

/** GPU utilization and memory per GPU per host, with a short history, refreshed every second. */
export class GpuModel {
  readonly historyLength: number;
  private _hosts: IGpuHost[] = [];
  private _traces = new Map<string, IGpuTrace>();
  private _error: string | null = null;
  private _loaded = false;
  private _live: Liveness = 'off';
  private _stream: IEventStream | null = null;
  private _pollTimer: ReturnType<typeof setInterval> | null = null;
  private _changed = new Signal<this, void>(this);

  constructor(
    readonly api: IRunsAPI,
    options: { historyLength?: number; pollMs?: number } = {}
  ) {
    this.historyLength = options.historyLength ?? 60;
    this._pollMs = options.pollMs ?? 1000;
  }

  private readonly _pollMs: number;

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get hosts(): readonly IGpuHost[] {
    return this._hosts;
  }

  get error(): string | null {
    return this._error;
  }

  get loaded(): boolean {
    return this._loaded;
  }

  get live(): Liveness {
    return this._live;
  }

  /** True once a report came back in which no host has a GPU. */
  get noGpu(): boolean {
    return this._loaded && this._hosts.every(h => !h.available || h.gpus.length === 0);
  }

  trace(host: IGpuHost, gpu: IGpuSample): IGpuTrace | undefined {
    return this._traces.get(gpuKey(host, gpu));
  }

  /** Start listening (first report fetched at once); polls every second while the push channel is down. */
  start(): void {
    if (this._stream) {
      return;
    }
    void this.poll();
    this._stream = this.api.subscribe(['gpus'], {
      gpus: report => this.ingest(report),
      open: () => this._setPolling(false),
      error: () => this._setPolling(true)
    });
  }

  stop(): void {
    this._stream?.close();
    this._stream = null;
    this._setPolling(false);
    this._live = 'off';
  }

  async poll(): Promise<void> {
    try {
      this.ingest(await this.api.gpus());
    } catch (error) {
      this._error = messageOf(error);
      this._changed.emit();
    }
  }

  /** Add a report to the history; GPUs no longer reported are forgotten. */
  ingest(report: IGpuReport): void {
    const seen = new Set<string>();
    for (const host of report.hosts) {
      for (const gpu of host.gpus) {
        const key = gpuKey(host, gpu);
        seen.add(key);
        const trace = this._traces.get(key) ?? {
          key,
          host: host.host,
          worker: host.worker,
          source: host.source,
          latest: gpu,
          timestamps: [],
          utilization: [],
          memoryUsed: []
        };
        trace.latest = gpu;
        if (trace.timestamps[trace.timestamps.length - 1] !== gpu.timestamp) {
          trace.timestamps.push(gpu.timestamp);
          trace.utilization.push(gpu.utilization_percent);
          trace.memoryUsed.push(gpu.memory_used_bytes);
        }
        const excess = trace.timestamps.length - this.historyLength;
        if (excess > 0) {
          trace.timestamps.splice(0, excess);
          trace.utilization.splice(0, excess);
          trace.memoryUsed.splice(0, excess);
        }
        this._traces.set(key, trace);
      }
    }
    for (const key of [...this._traces.keys()]) {
      if (!seen.has(key)) {
        this._traces.delete(key);
      }
    }
    this._hosts = report.hosts;
    this._loaded = true;
    this._error = null;
    this._changed.emit();
  }

  dispose(): void {
    this.stop();
    Signal.clearData(this);
  }

  private _setPolling(on: boolean): void {
    if (this._pollTimer !== null) {
      clearInterval(this._pollTimer);
      this._pollTimer = null;
    }
    if (on) {
      this._pollTimer = setInterval(() => void this.poll(), this._pollMs);
    }
    this._live = on ? 'polling' : 'push';
    this._changed.emit();
  }
}
