import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** The server extension's API namespace on the user's server. */
export const API_NAMESPACE = 'dshare/api';

/**
 * An error answered by the dshare API: the server's `{code, message, field?}`
 * kept intact so the user sees what the broker or the ledger said.
 */
export class DShareError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string
  ) {
    super(message);
    this.name = 'DShareError';
  }

  /** The text a notification shows: code first, so it can be searched for. */
  get display(): string {
    const where = this.field ? ` (field: ${this.field})` : '';
    return `${this.code}: ${this.message}${where}`;
  }
}

/** Error code used when the server could not be reached at all. */
export const NETWORK_ERROR = 'NETWORK_ERROR';
/** Error code used when the server answered something that is not the API's error shape. */
export const HTTP_ERROR = 'HTTP_ERROR';

function errorFromBody(
  status: number,
  body: unknown,
  statusText: string
): DShareError {
  if (body && typeof body === 'object') {
    const b = body as Record<string, unknown>;
    if (typeof b.code === 'string' && typeof b.message === 'string') {
      const field = typeof b.field === 'string' ? b.field : undefined;
      return new DShareError(status, b.code, b.message, field);
    }
    if (typeof b.message === 'string') {
      return new DShareError(status, HTTP_ERROR, b.message);
    }
  }
  const text =
    typeof body === 'string' && body.trim() ? body.trim() : statusText;
  return new DShareError(
    status,
    HTTP_ERROR,
    `HTTP ${status}: ${text || 'request failed'}`
  );
}

export interface IRequestOptions {
  method?: string;
  /** JSON body; serialized here so callers never build strings by hand. */
  body?: unknown;
  /** Query parameters; undefined, null and '' values are left out. */
  query?: Record<string, string | number | boolean | undefined | null>;
  /** Return the body as text (logs) instead of parsing JSON. */
  text?: boolean;
}

/** Build `<baseUrl>dshare/api/<endPoint>?<query>`. */
export function apiUrl(
  endPoint: string,
  settings: ServerConnection.ISettings,
  query: IRequestOptions['query'] = {}
): string {
  const url = URLExt.join(settings.baseUrl, API_NAMESPACE, endPoint);
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === '') {
      continue;
    }
    params.append(key, String(value));
  }
  const qs = params.toString();
  return qs ? `${url}?${qs}` : url;
}

/**
 * Call the dshare server extension. Resolves with the decoded JSON (or text)
 * and rejects with a DShareError carrying the server's code and message.
 */
export async function requestAPI<T>(
  endPoint: string,
  options: IRequestOptions = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const init: RequestInit = { method: options.method ?? 'GET' };
  if (options.body !== undefined) {
    init.body = JSON.stringify(options.body);
    init.headers = { 'Content-Type': 'application/json' };
  }
  const url = apiUrl(endPoint, settings, options.query);
  let response: Response;
  try {
    // makeRequest adds the XSRF token and the server's auth header.
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new DShareError(
      0,
      NETWORK_ERROR,
      `Could not reach the Jupyter server (${reason}). Check your connection and retry.`
    );
  }
  const raw = await response.text();
  let data: unknown = raw;
  if (raw.length > 0 && !options.text) {
    try {
      data = JSON.parse(raw);
    } catch {
      if (response.ok) {
        throw new DShareError(
          response.status,
          HTTP_ERROR,
          `The server answered ${endPoint} with something that is not JSON.`
        );
      }
    }
  } else if (raw.length > 0 && !response.ok) {
    try {
      data = JSON.parse(raw);
    } catch {
      data = raw;
    }
  }
  if (!response.ok) {
    throw errorFromBody(response.status, data, response.statusText);
  }
  return data as T;
}
