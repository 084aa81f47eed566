import { describe, expect, it } from 'vitest';

import { IRunSummary } from '../src/api';
import { IRunSnapshot, merged, outdated, shownStatus, statusLine } from '../src/runStatus';

const snapshot: IRunSnapshot = {
  version: 1,
  run_id: 'abcdef0123456789',
  name: 'train',
  kind: 'remote',
  status: 'running',
  started_at: 1000,
  ended_at: null,
  duration_s: null,
  metrics: {},
  error_type: null,
  job: { name: 'train', status: 'queued', worker: null }
};

describe('the in-cell run status', () => {
  it('shows a job queued until the store knows how it ended, then writes that back', () => {
    expect(shownStatus(snapshot)).toBe('queued');
    expect(statusLine(snapshot, 1_012_000)).toBe("remote 'train': queued · 12.0 s · run abcdef01");
    const summary = { status: 'ok', ended_at: 1030, duration_s: 30, metrics: { loss: 0.125 }, name: 'train' } as unknown as IRunSummary;
    const current = merged(snapshot, summary);
    expect(shownStatus(current)).toBe('ok');
    expect(statusLine(current)).toBe("remote 'train': ok · 30.0 s · loss 0.125 · run abcdef01");
    expect(outdated(snapshot, current)).toBe(true);
    expect(outdated(current, merged(current, summary))).toBe(false); // written back once, then stable
  });

  it('reads a tracked run as the cell summary does', () => {
    const cell = { ...snapshot, job: undefined, kind: 'cell', status: 'ok', duration_s: 2.5, metrics: { loss: null } };
    expect(statusLine(cell)).toBe('run abcdef01 · ok · 2.5 s · loss —');
    expect(outdated(cell, merged(cell, undefined))).toBe(false);
    // a finished run whose store summary orders its metrics differently is not rewritten
    const summary = { status: 'ok', metrics: { acc: 1, loss: null } } as unknown as IRunSummary;
    expect(outdated(cell, merged(cell, summary))).toBe(false);
  });
});
