/**
 * GPU utilization and memory per GPU per host (this machine and the Dask workers), with the last minute
 * of history, and a plain "no GPU" state.
 */
import * as React from 'react';

import { IGpuHost, IGpuSample } from '../api';
import { formatBytes } from '../format';
import { GpuModel } from '../gpuModel';
import { LineChart } from './LineChart';

export function GpuView(props: { model: GpuModel }): JSX.Element {
  const { model } = props;
  return (
    <div className="pk-gpus">
      <h2 className="pk-detail-title">
        GPUs <span className={`pk-live pk-live-${model.live}`}>{model.live === 'push' ? 'live' : model.live}</span>
      </h2>
      {model.error ? <div className="pk-error">{model.error}</div> : null}
      {!model.loaded ? <div className="pk-muted">loading…</div> : null}
      {model.noGpu ? <div className="pk-no-gpu">No GPU: no host in view has a GPU that can be sampled.</div> : null}
      {model.hosts.map(host => (
        <HostCard key={`${host.source}-${host.worker ?? host.host}`} host={host} model={model} />
      ))}
    </div>
  );
}

function HostCard(props: { host: IGpuHost; model: GpuModel }): JSX.Element {
  const { host } = props;
  return (
    <div className="pk-host">
      <div className="pk-host-title">
        {host.source === 'local' ? 'This machine' : 'Dask worker'} · {host.host ?? 'unknown host'}
        {host.worker ? <span className="pk-muted"> {host.worker}</span> : null}
        {host.driver_version ? <span className="pk-muted"> · driver {host.driver_version}</span> : null}
      </div>
      {!host.available || !host.gpus.length ? (
        <div className="pk-muted pk-host-reason">no GPU{host.reason ? `: ${host.reason}` : ''}</div>
      ) : (
        host.gpus.map(gpu => <GpuRow key={gpu.uuid || gpu.index} host={host} gpu={gpu} model={props.model} />)
      )}
    </div>
  );
}

function Bar(props: { fraction: number | null; label: string }): JSX.Element {
  const pct = props.fraction === null ? 0 : Math.max(0, Math.min(1, props.fraction)) * 100;
  return (
    <div className="pk-bar" title={props.label}>
      <div className="pk-bar-fill" style={{ width: `${pct}%` }} />
      <span className="pk-bar-label">{props.label}</span>
    </div>
  );
}

function GpuRow(props: { host: IGpuHost; gpu: IGpuSample; model: GpuModel }): JSX.Element {
  const { gpu } = props;
  const trace = props.model.trace(props.host, gpu);
  const total = gpu.memory_total_bytes;
  const memFraction = total && gpu.memory_used_bytes !== null ? gpu.memory_used_bytes / total : null;
  const util = gpu.utilization_percent;
  const t0 = trace?.timestamps[0] ?? 0;
  const xs = (trace?.timestamps ?? []).map(t => t - t0);
  return (
    <div className="pk-gpu">
      <div className="pk-gpu-name">
        GPU {gpu.index} · {gpu.name}
        {gpu.temperature_c !== null ? <span className="pk-muted"> · {gpu.temperature_c} °C</span> : null}
        {gpu.power_watts !== null ? <span className="pk-muted"> · {gpu.power_watts.toFixed(0)} W</span> : null}
      </div>
      <Bar fraction={util === null ? null : util / 100} label={util === null ? 'utilization n/a' : `${util.toFixed(0)}% busy`} />
      <Bar
        fraction={memFraction}
        label={`${formatBytes(gpu.memory_used_bytes)} / ${formatBytes(total)} memory`}
      />
      {trace && trace.timestamps.length > 1 ? (
        <LineChart
          width={320}
          height={80}
          yRange={{ min: 0, max: 100 }}
          formatY={v => `${v.toFixed(0)}%`}
          formatX={x => `${x.toFixed(0)} s`}
          series={[
            { label: 'utilization %', xs, ys: trace.utilization },
            {
              label: 'memory %',
              xs,
              ys: trace.memoryUsed.map(m => (m !== null && total ? (100 * m) / total : null))
            }
          ]}
        />
      ) : null}
    </div>
  );
}
