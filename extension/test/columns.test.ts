import { describe, expect, it } from 'vitest';

import { IRunSummary } from '../src/api';
import { cellValue, columnId, columnLabel, columnSort, ColumnsModel, STORAGE_KEY } from '../src/columns';

class MemoryStorage {
  items = new Map<string, string>();
  getItem(key: string) {
    return this.items.get(key) ?? null;
  }
  setItem(key: string, value: string) {
    this.items.set(key, value);
  }
}

const run = {
  params: { lr: 0.1, model: 'vit' },
  metrics: { loss: 0.25 },
  metric_stats: { loss: { last: 0.25, min: 0.2, max: 2, count: 10 } }
} as unknown as IRunSummary;

describe('run table columns', () => {
  it('reads a run value, labels and sorts by the server syntax', () => {
    expect(cellValue(run, { source: 'param', key: 'lr' })).toBe(0.1);
    expect(cellValue(run, { source: 'metric', key: 'loss' })).toBe(0.25);
    expect(cellValue(run, { source: 'metric', key: 'loss', stat: 'min' })).toBe(0.2);
    expect(cellValue(run, { source: 'param', key: 'absent' })).toBeUndefined();
    expect(columnSort({ source: 'param', key: 'lr' })).toBe('param:lr');
    expect(columnSort({ source: 'metric', key: 'loss', stat: 'last' })).toBe('metric:loss');
    expect(columnSort({ source: 'metric', key: 'loss', stat: 'max' })).toBe('metric:loss:max');
    expect(columnLabel({ source: 'metric', key: 'loss', stat: 'min' })).toBe('loss (min)');
    expect(columnId({ source: 'metric', key: 'loss' })).toBe('metric:loss:last');
  });

  it('suggests columns until the user picks, then remembers the choice', () => {
    const storage = new MemoryStorage();
    const columns = new ColumnsModel(storage);
    const keys = {
      params: [{ key: 'lr', count: 9 }, { key: 'model', count: 9 }, { key: 'seed', count: 1 }],
      metrics: [{ key: 'loss', count: 9 }],
      tags: [],
      runs_examined: 9,
      sampled: false
    };
    columns.suggest(keys);
    expect(columns.columns.map(columnId)).toEqual(['param:lr', 'param:model', 'metric:loss:last']);
    expect(columns.needsStats).toBe(false);
    columns.toggle({ source: 'metric', key: 'loss', stat: 'min' });
    expect(columns.needsStats).toBe(true);
    columns.toggle({ source: 'param', key: 'model' });
    const again = new ColumnsModel(storage);
    expect(again.columns.map(columnId)).toEqual(['param:lr', 'metric:loss:last', 'metric:loss:min']);
    again.suggest(keys); // the user's choice stays
    expect(again.columns).toHaveLength(3);
  });

  it('ignores a damaged saved entry', () => {
    const storage = new MemoryStorage();
    storage.setItem(STORAGE_KEY, '{not json');
    expect(new ColumnsModel(storage).columns).toEqual([]);
    storage.setItem(STORAGE_KEY, JSON.stringify([{ source: 'param', key: 'lr' }, { source: '<b>', key: 1 }]));
    expect(new ColumnsModel(storage).columns).toEqual([{ source: 'param', key: 'lr' }]);
  });
});
