/**
 * The run table as a tree over a paged list: the server pages the top-level runs; a row the user expands
 * (a notebook run's cells, a sweep's runs) holds its own small list, and so on down. These pure functions
 * map a display position (what the virtualized table asks for) to a place in that tree.
 */
import { IRunSummary } from './api';

/** An expanded row: its position in its parent's list and the rows shown under it. */
export interface IExpansion {
  /** The expanded row's run id (positions shift when runs arrive; the id says which row it was). */
  id: string;
  /** Its index in the parent's list (the server's list for a top-level row). */
  index: number;
  /** `sweep`: the runs of the sweep this row stands for; `children`: the run's child runs. */
  mode: 'children' | 'sweep';
  /** null while loading. */
  rows: IRunSummary[] | null;
  error: string | null;
  /** Expanded rows among `rows`, by index, ascending. */
  nested: IExpansion[];
}

export type Located =
  | { kind: 'row'; index: number; depth: number; owner: IExpansion | null }
  | { kind: 'loading'; depth: number; owner: IExpansion };

/** How many display rows an expansion adds (a loading expansion shows one placeholder row). */
export function expansionSize(expansion: IExpansion): number {
  let size = expansion.rows ? expansion.rows.length : 1;
  for (const nested of expansion.nested) {
    size += expansionSize(nested);
  }
  return size;
}

/** Display rows of a list of `length` rows with these expansions. */
export function displayCount(length: number, expansions: IExpansion[]): number {
  return expansions.reduce((sum, e) => sum + expansionSize(e), length);
}

/**
 * Where display row `display` is: a row of the list (top-level when `owner` is null, else of the owner's
 * rows) at `index` and nesting `depth`, or an expansion's loading placeholder. null past the end.
 */
export function locate(
  display: number,
  length: number,
  expansions: IExpansion[],
  depth = 0,
  owner: IExpansion | null = null
): Located | null {
  let shift = 0;
  for (const expansion of expansions) {
    const start = expansion.index + 1 + shift; // display position of the first row inside it
    if (display < start) {
      break;
    }
    const size = expansionSize(expansion);
    if (display < start + size) {
      if (!expansion.rows) {
        return { kind: 'loading', depth: depth + 1, owner: expansion };
      }
      return locate(display - start, expansion.rows.length, expansion.nested, depth + 1, expansion);
    }
    shift += size;
  }
  const index = display - shift;
  return index >= 0 && index < length ? { kind: 'row', index, depth, owner } : null;
}

/** The top-level index a display row belongs to (an expanded row's own index for rows inside it). */
export function topIndexAt(display: number, length: number, expansions: IExpansion[]): number {
  let shift = 0;
  for (const expansion of expansions) {
    const start = expansion.index + 1 + shift;
    if (display < start) {
      break;
    }
    const size = expansionSize(expansion);
    if (display < start + size) {
      return expansion.index;
    }
    shift += size;
  }
  return Math.max(0, Math.min(length - 1, display - shift));
}

/** The display position of a top-level index. */
export function displayIndexOf(index: number, expansions: IExpansion[]): number {
  let shift = 0;
  for (const expansion of expansions) {
    if (expansion.index >= index) {
      break;
    }
    shift += expansionSize(expansion);
  }
  return index + shift;
}

/** Insert or remove an expansion in a list kept sorted by index; returns the new list. */
export function toggleIn(expansions: IExpansion[], expansion: IExpansion): IExpansion[] {
  const existing = expansions.findIndex(e => e.id === expansion.id);
  if (existing >= 0) {
    return expansions.filter((_, i) => i !== existing);
  }
  return [...expansions, expansion].sort((a, b) => a.index - b.index);
}

/** Every expansion in the tree (depth first), for lookups by id. */
export function allExpansions(expansions: IExpansion[]): IExpansion[] {
  return expansions.flatMap(e => [e, ...allExpansions(e.nested)]);
}
