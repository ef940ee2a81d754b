import { ServerConnection } from '@jupyterlab/services';

import { DShareClient } from '../client';
import { notifyError } from '../notify';
import { DShareError, HTTP_ERROR, NETWORK_ERROR, requestAPI } from '../request';
import { Notification } from '@jupyterlab/apputils';

function settingsWith(fetchImpl: jest.Mock): ServerConnection.ISettings {
  return ServerConnection.makeSettings({
    baseUrl: 'http://localhost:8888/user/alice/',
    fetch: fetchImpl as any
  });
}

function reply(status: number, body: string): jest.Mock {
  return jest.fn(async () => new Response(body, { status }));
}

/** The requested URL without the cache-busting number ServerConnection appends to GETs. */
function urlOf(fetchMock: jest.Mock, i: number): string {
  return (fetchMock.mock.calls[i][0] as Request).url.replace(/[?&]\d+$/, '');
}

async function failure(p: Promise<unknown>): Promise<DShareError> {
  try {
    await p;
  } catch (e) {
    return e as DShareError;
  }
  throw new Error('expected the request to fail');
}

describe('requestAPI', () => {
  it('calls /dshare/api/<endpoint> with the query, skipping empty values', async () => {
    const fetchMock = reply(200, '{"items": [], "bookmark": ""}');
    const client = new DShareClient(settingsWith(fetchMock));
    await client.listDatasets({
      q: 'word',
      org: '',
      tag: 'nlp',
      available: true
    });
    const request = fetchMock.mock.calls[0][0] as Request;
    expect(urlOf(fetchMock, 0)).toBe(
      'http://localhost:8888/user/alice/dshare/api/datasets?q=word&tag=nlp&available=true'
    );
    expect(request.method).toBe('GET');
  });

  it('sends JSON bodies for writes and encodes ids in the path', async () => {
    const fetchMock = reply(201, '{"id": "l1", "state": "pending"}');
    const client = new DShareClient(settingsWith(fetchMock));
    const result = await client.requestLease('a/b', 3600, 'thesis');
    const request = fetchMock.mock.calls[0][0] as Request;
    expect(request.method).toBe('POST');
    expect(await request.text()).toBe(
      JSON.stringify({ dataset_id: 'a/b', duration_s: 3600, purpose: 'thesis' })
    );
    expect(result).toEqual({ id: 'l1', state: 'pending' });
    await client.releaseLease('x y');
    expect(urlOf(fetchMock, 1)).toBe(
      'http://localhost:8888/user/alice/dshare/api/leases/x%20y/release'
    );
  });

  it('returns job logs as text, unparsed', async () => {
    const client = new DShareClient(
      settingsWith(reply(200, '{"not": "json to parse"}\n'))
    );
    expect(await client.jobLogs('r1', 'job-1')).toBe(
      '{"not": "json to parse"}\n'
    );
  });

  it("turns the server's {code, message, field} into a DShareError", async () => {
    const body = JSON.stringify({
      code: 'INVALID_ARGUMENT',
      message: 'duration_s exceeds the policy maximum of 7200',
      field: 'duration_s'
    });
    const settings = settingsWith(reply(400, body));
    const err = await failure(
      requestAPI('leases', { method: 'POST', body: {} }, settings)
    );
    expect(err).toBeInstanceOf(DShareError);
    expect(err.status).toBe(400);
    expect(err.code).toBe('INVALID_ARGUMENT');
    expect(err.field).toBe('duration_s');
    expect(err.display).toBe(
      'INVALID_ARGUMENT: duration_s exceeds the policy maximum of 7200 (field: duration_s)'
    );
  });

  it('keeps a non-JSON error body readable', async () => {
    const err = await failure(
      requestAPI('me', {}, settingsWith(reply(502, 'Bad gateway')))
    );
    expect(err.code).toBe(HTTP_ERROR);
    expect(err.message).toBe('HTTP 502: Bad gateway');
  });

  it('refuses a 200 answer that is not JSON', async () => {
    const err = await failure(
      requestAPI('me', {}, settingsWith(reply(200, '<html>')))
    );
    expect(err.code).toBe(HTTP_ERROR);
    expect(err.message).toBe(
      'The server answered me with something that is not JSON.'
    );
  });

  it('reports an unreachable server as NETWORK_ERROR', async () => {
    const fetchMock = jest.fn(async () => {
      throw new TypeError('Failed to fetch');
    });
    const err = await failure(requestAPI('me', {}, settingsWith(fetchMock)));
    expect(err.code).toBe(NETWORK_ERROR);
    expect(err.message).toBe(
      'Could not reach the Jupyter server (Failed to fetch). Check your connection and retry.'
    );
  });

  it("puts the server's error message in the notification", async () => {
    const spy = jest
      .spyOn(Notification, 'error')
      .mockImplementation(() => 'id');
    const body = JSON.stringify({
      code: 'LEASE_CONFLICT',
      message: 'ds-1 is leased exclusively'
    });
    const err = await failure(
      requestAPI('leases', {}, settingsWith(reply(409, body)))
    );
    const shown = notifyError('Requesting a lease', err);
    expect(shown).toBe(
      'Requesting a lease failed: LEASE_CONFLICT: ds-1 is leased exclusively'
    );
    expect(spy).toHaveBeenCalledWith(shown, { autoClose: false });
    spy.mockRestore();
  });
});
