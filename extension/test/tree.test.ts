import { describe, expect, it } from 'vitest';

import { IRunSummary } from '../src/api';
import { displayCount, displayIndexOf, IExpansion, locate, toggleIn, topIndexAt } from '../src/tree';

const rows = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => ({ id: `${prefix}${i}` }) as IRunSummary);

function expansion(id: string, index: number, count: number | null, nested: IExpansion[] = []): IExpansion {
  return { id, index, mode: 'children', rows: count === null ? null : rows(count, `${id}.`), error: null, nested };
}

describe('the run tree over a paged list', () => {
  // top list of 100: row 2 expanded (3 rows, its row 1 expanded with 2), row 10 loading
  const tree = [expansion('a', 2, 3, [expansion('b', 1, 2)]), expansion('c', 10, null)];

  it('counts display rows', () => {
    expect(displayCount(100, [])).toBe(100);
    expect(displayCount(100, tree)).toBe(100 + 3 + 2 + 1);
  });

  it('locates rows before, inside and after expansions', () => {
    expect(locate(2, 100, tree)).toMatchObject({ kind: 'row', index: 2, depth: 0, owner: null });
    expect(locate(3, 100, tree)).toMatchObject({ kind: 'row', index: 0, depth: 1, owner: { id: 'a' } });
    expect(locate(5, 100, tree)).toMatchObject({ kind: 'row', index: 0, depth: 2, owner: { id: 'b' } });
    expect(locate(7, 100, tree)).toMatchObject({ kind: 'row', index: 2, depth: 1, owner: { id: 'a' } });
    expect(locate(8, 100, tree)).toMatchObject({ kind: 'row', index: 3, depth: 0, owner: null });
    expect(locate(15, 100, tree)).toMatchObject({ kind: 'row', index: 10, depth: 0 });
    expect(locate(16, 100, tree)).toMatchObject({ kind: 'loading', depth: 1, owner: { id: 'c' } });
    expect(locate(17, 100, tree)).toMatchObject({ kind: 'row', index: 11 });
    expect(locate(105, 100, tree)).toMatchObject({ kind: 'row', index: 99 });
    expect(locate(106, 100, tree)).toBeNull();
  });

  it('maps display rows to the top-level rows that own them, and back', () => {
    expect(topIndexAt(6, 100, tree)).toBe(2);
    expect(topIndexAt(16, 100, tree)).toBe(10);
    expect(topIndexAt(50, 100, tree)).toBe(44);
    expect(displayIndexOf(44, tree)).toBe(50);
    expect(displayIndexOf(2, tree)).toBe(2);
  });

  it('toggles an expansion in and out, keeping the order', () => {
    const added = toggleIn(tree, expansion('d', 5, 1));
    expect(added.map(e => e.id)).toEqual(['a', 'd', 'c']);
    expect(toggleIn(added, expansion('d', 5, 1)).map(e => e.id)).toEqual(['a', 'c']);
  });
});
