import { ServerConnection } from '@jupyterlab/services';
import { describe, expect, it } from 'vitest';

import { APIError, encodePath, queryString, requestAPI, RunsClient } from '../src/api';

type Call = { url: string; init?: RequestInit };

function fakeSettings(respond: (url: string) => Response, calls: Call[] = [], extra: Partial<ServerConnection.ISettings> = {}) {
  const fetch = async (input: RequestInfo, init?: RequestInit) => {
    const url = typeof input === 'string' ? input : input.url;
    calls.push({ url, init });
    return respond(url);
  };
  return ServerConnection.makeSettings({ baseUrl: 'http://lab.test/base/', wsUrl: 'ws://lab.test/base/', token: 't0k', appendToken: false, fetch, ...extra });
}

describe('queryString', () => {
  it('skips empty values and encodes the rest', () => {
    expect(queryString({ q: 'a b&c', status: '', kind: undefined, limit: 50 })).toBe('?q=a%20b%26c&limit=50');
    expect(queryString({})).toBe('');
  });
});

describe('encodePath', () => {
  it('encodes each segment and keeps the slashes', () => {
    expect(encodePath('out dir/model#1.pt')).toBe('out%20dir/model%231.pt');
    expect(encodePath('../x')).toBe('../x'.split('/').map(encodeURIComponent).join('/'));
  });
});

describe('requestAPI', () => {
  it('calls the API path under the base URL and parses JSON', async () => {
    const calls: Call[] = [];
    const settings = fakeSettings(() => new Response('{"total": 3, "runs": []}', { status: 200 }), calls);
    const result = await requestAPI<{ total: number }>('runs?limit=1', {}, settings);
    expect(result.total).toBe(3);
    expect(calls[0].url).toMatch(/^http:\/\/lab\.test\/base\/pykernel-ext\/api\/v1\/runs\?limit=1&\d+$/); // + cache buster
  });

  it('rejects with the server message and status', async () => {
    const settings = fakeSettings(() => new Response('{"message": "limit=0 is out of range"}', { status: 400 }));
    const error = await requestAPI('runs?limit=0', {}, settings).catch(e => e);
    expect(error).toBeInstanceOf(APIError);
    expect(error.status).toBe(400);
    expect(error.message).toBe('limit=0 is out of range');
  });

  it('turns a network failure into an APIError with status 0', async () => {
    const settings = ServerConnection.makeSettings({
      baseUrl: 'http://lab.test/',
      fetch: () => Promise.reject(new TypeError('connection refused'))
    });
    const error = await requestAPI('runs', {}, settings).catch(e => e);
    expect(error).toBeInstanceOf(APIError);
    expect(error.status).toBe(0);
    expect(error.message).toContain('connection refused');
  });

  it('reports a non-JSON answer', async () => {
    const settings = fakeSettings(() => new Response('<html>proxy error</html>', { status: 502 }));
    await expect(requestAPI('runs', {}, settings)).rejects.toThrow(/not JSON/);
  });
});

class FakeEventSource {
  static last: FakeEventSource | null = null;
  listeners = new Map<string, (event: MessageEvent<string>) => void>();
  onopen: (() => void) | null = null;
  onerror: (() => void) | null = null;
  closed = false;
  constructor(
    readonly url: string,
    readonly init?: EventSourceInit
  ) {
    FakeEventSource.last = this;
  }
  addEventListener(name: string, listener: (event: MessageEvent<string>) => void) {
    this.listeners.set(name, listener);
  }
  emit(name: string, data: unknown) {
    this.listeners.get(name)?.({ data: JSON.stringify(data) } as MessageEvent<string>);
  }
  close() {
    this.closed = true;
  }
}

describe('RunsClient', () => {
  it('builds list, run, compare, artifact and log URLs', async () => {
    const calls: Call[] = [];
    const settings = fakeSettings(() => new Response('{}', { status: 200 }), calls);
    const client = new RunsClient(settings, FakeEventSource as unknown as typeof EventSource);
    await client.listRuns({ limit: 100, offset: 200, status: 'failed', q: 'lr=0.1' });
    await client.getRun('abc123');
    await client.compare(['a1', 'b2', 'c3']);
    await client.gpus();
    expect(calls.map(c => c.url.replace('http://lab.test/base/pykernel-ext/api/v1/', '').replace(/[?&]\d+$/, ''))).toEqual([
      'runs?limit=100&offset=200&status=failed&q=lr%3D0.1',
      'runs/abc123',
      'compare?ids=a1%2Cb2%2Cc3',
      'gpus'
    ]);
    expect(client.artifactUrl('abc', 'out/my model.pt')).toBe(
      'http://lab.test/base/pykernel-ext/api/v1/runs/abc/artifacts/out/my%20model.pt'
    );
    expect(client.logUrl('abc', 'stderr')).toBe('http://lab.test/base/pykernel-ext/api/v1/runs/abc/logs/stderr');
  });

  it('subscribes to server-sent events and forwards them typed', () => {
    const settings = fakeSettings(() => new Response('{}'));
    const client = new RunsClient(settings, FakeEventSource as unknown as typeof EventSource);
    const got: string[] = [];
    const stream = client.subscribe(['runs'], {
      runs: e => got.push(`runs:${e.runs.length}`),
      open: () => got.push('open'),
      error: () => got.push('error')
    });
    const source = FakeEventSource.last!;
    expect(source.url).toBe('http://lab.test/base/pykernel-ext/api/v1/events?topics=runs');
    source.onopen?.();
    source.emit('runs', { runs: [{ id: 'a' }], more: false });
    source.onerror?.();
    expect(got).toEqual(['open', 'runs:1', 'error']);
    stream.close();
    expect(source.closed).toBe(true);
  });

  it('appends the token only when the settings ask for it', () => {
    const settings = fakeSettings(() => new Response('{}'), [], { appendToken: true });
    new RunsClient(settings, FakeEventSource as unknown as typeof EventSource).subscribe(['gpus'], {});
    expect(FakeEventSource.last!.url).toContain('topics=gpus&token=t0k');
  });

  it('reports an error when the browser has no EventSource', () => {
    const settings = fakeSettings(() => new Response('{}'));
    let failed = false;
    new RunsClient(settings, undefined).subscribe(['runs'], { error: () => (failed = true) });
    expect(failed).toBe(true);
  });
});
