/**
 * The page requests of the run table: at most `maxInFlight` at once, the pages on screen first, and a
 * request for a page that left the view aborted (the server then skips work it had not started). An answer
 * is delivered only if its request is still the current one for its page.
 */
import { AbortedError, IRunsAPI, IRunsPage, IRunsQuery } from './api';

export interface IPageHost {
  /** The query for a page (`refresh`: by offset, counting). */
  query(page: number, refresh: boolean): IRunsQuery;
  /** Whether a page is already loaded. */
  has(page: number): boolean;
  received(page: number, result: IRunsPage): void;
  failed(page: number, error: unknown): void;
}

interface IRequest {
  controller: AbortController;
  token: number;
}

export class PageRequests {
  private _inFlight = new Map<number, IRequest>();
  private _queue: number[] = [];
  private _tokens = 0;

  constructor(
    private readonly api: IRunsAPI,
    private readonly host: IPageHost,
    private readonly maxInFlight: number
  ) {}

  /** Requests on their way. */
  get inFlight(): number {
    return this._inFlight.size;
  }

  /**
   * Load `pages` (in priority order) and nothing outside `keep`: requests for other pages are aborted,
   * queued ones dropped.
   */
  want(pages: number[], keep: { from: number; to: number }): void {
    for (const [page, request] of [...this._inFlight]) {
      if (page < keep.from || page > keep.to) {
        request.controller.abort();
        this._inFlight.delete(page);
      }
    }
    this._queue = pages.filter(page => !this.host.has(page) && !this._inFlight.has(page));
    this._pump();
  }

  /** Ask for a page now, replacing a request for it in flight (a refresh). */
  refresh(page: number): void {
    this._start(page, true);
  }

  /** Abort everything (a new query, or disposal). */
  cancelAll(): void {
    for (const request of this._inFlight.values()) {
      request.controller.abort();
    }
    this._inFlight.clear();
    this._queue = [];
  }

  private _pump(): void {
    while (this._inFlight.size < this.maxInFlight && this._queue.length) {
      this._start(this._queue.shift()!, false);
    }
  }

  private _start(page: number, refresh: boolean): void {
    if (!refresh && this._inFlight.has(page)) {
      return;
    }
    this._inFlight.get(page)?.controller.abort();
    const controller = new AbortController();
    const token = ++this._tokens;
    this._inFlight.set(page, { controller, token });
    const current = (): boolean => {
      if (this._inFlight.get(page)?.token !== token) {
        return false; // cancelled or superseded meanwhile: its answer is not wanted
      }
      this._inFlight.delete(page);
      return true;
    };
    this.api.listRuns(this.host.query(page, refresh), controller.signal).then(
      result => {
        if (current()) {
          this.host.received(page, result);
        }
        this._pump();
      },
      error => {
        if (current() && !(error instanceof AbortedError)) {
          this.host.failed(page, error);
        }
        this._pump();
      }
    );
  }
}
