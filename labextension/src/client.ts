import { ServerConnection } from '@jupyterlab/services';

import { requestAPI } from './request';
import {
  IDataset,
  IDatasetFilters,
  IDatasetIn,
  IHistoryEntry,
  ILease,
  IMe,
  IPage,
  IRun,
  IViewsRefresh
} from './types';

export type LeaseScope = 'mine' | 'org' | 'pending';

/** Everything the DataExplorer asks of the server; components depend on this only. */
export interface IDShareClient {
  me(): Promise<IMe>;
  listDatasets(filters?: IDatasetFilters): Promise<IPage<IDataset>>;
  getDataset(id: string): Promise<IDataset>;
  history(id: string): Promise<IPage<IHistoryEntry>>;
  createDataset(body: IDatasetIn): Promise<IDataset>;
  updateDataset(id: string, body: IDatasetIn): Promise<IDataset>;
  retireDataset(id: string): Promise<IDataset>;
  listLeases(scope: LeaseScope, dataset?: string): Promise<IPage<ILease>>;
  requestLease(
    datasetId: string,
    durationS: number,
    purpose: string
  ): Promise<ILease>;
  releaseLease(id: string): Promise<ILease>;
  decideLease(id: string, decision: 'approve' | 'reject'): Promise<ILease>;
  listRuns(): Promise<IPage<IRun>>;
  getRun(id: string): Promise<IRun>;
  jobLogs(runId: string, job: string): Promise<string>;
  /** Link the user's interactive leases into ~/datasets now (the server also does it
   * every 30 s); what it linked. */
  refreshViews(): Promise<IViewsRefresh>;
  /** Org admins: held files of runs over the org's data, waiting for its decision. */
  heldOutputs(): Promise<IPage<IRun>>;
  decideOutput(
    runId: string,
    path: string,
    approve: boolean,
    reason: string
  ): Promise<IRun>;
}

const enc = encodeURIComponent;

/** The client over the user's server (`/dshare/api/...`). */
export class DShareClient implements IDShareClient {
  constructor(
    private readonly settings: ServerConnection.ISettings = ServerConnection.makeSettings()
  ) {}

  me(): Promise<IMe> {
    return requestAPI<IMe>('me', {}, this.settings);
  }

  listDatasets(filters: IDatasetFilters = {}): Promise<IPage<IDataset>> {
    const query = {
      ...filters,
      available: filters.available ? 'true' : undefined
    };
    return requestAPI<IPage<IDataset>>('datasets', { query }, this.settings);
  }

  getDataset(id: string): Promise<IDataset> {
    return requestAPI<IDataset>(`datasets/${enc(id)}`, {}, this.settings);
  }

  history(id: string): Promise<IPage<IHistoryEntry>> {
    return requestAPI<IPage<IHistoryEntry>>(
      `datasets/${enc(id)}/history`,
      {},
      this.settings
    );
  }

  createDataset(body: IDatasetIn): Promise<IDataset> {
    return requestAPI<IDataset>(
      'datasets',
      { method: 'POST', body },
      this.settings
    );
  }

  updateDataset(id: string, body: IDatasetIn): Promise<IDataset> {
    return requestAPI<IDataset>(
      `datasets/${enc(id)}`,
      { method: 'PATCH', body },
      this.settings
    );
  }

  retireDataset(id: string): Promise<IDataset> {
    return requestAPI<IDataset>(
      `datasets/${enc(id)}`,
      { method: 'DELETE' },
      this.settings
    );
  }

  listLeases(scope: LeaseScope, dataset?: string): Promise<IPage<ILease>> {
    return requestAPI<IPage<ILease>>(
      'leases',
      { query: { scope, dataset } },
      this.settings
    );
  }

  requestLease(
    datasetId: string,
    durationS: number,
    purpose: string
  ): Promise<ILease> {
    const body = { dataset_id: datasetId, duration_s: durationS, purpose };
    return requestAPI<ILease>(
      'leases',
      { method: 'POST', body },
      this.settings
    );
  }

  releaseLease(id: string): Promise<ILease> {
    return requestAPI<ILease>(
      `leases/${enc(id)}/release`,
      { method: 'POST' },
      this.settings
    );
  }

  decideLease(id: string, decision: 'approve' | 'reject'): Promise<ILease> {
    return requestAPI<ILease>(
      `leases/${enc(id)}/${decision}`,
      { method: 'POST' },
      this.settings
    );
  }

  listRuns(): Promise<IPage<IRun>> {
    return requestAPI<IPage<IRun>>('runs', {}, this.settings);
  }

  getRun(id: string): Promise<IRun> {
    return requestAPI<IRun>(`runs/${enc(id)}`, {}, this.settings);
  }

  jobLogs(runId: string, job: string): Promise<string> {
    return requestAPI<string>(
      `runs/${enc(runId)}/logs/${enc(job)}`,
      { text: true },
      this.settings
    );
  }

  refreshViews(): Promise<IViewsRefresh> {
    return requestAPI<IViewsRefresh>(
      'views',
      { method: 'POST', body: {} },
      this.settings
    );
  }

  heldOutputs(): Promise<IPage<IRun>> {
    return requestAPI<IPage<IRun>>('outputs/held', {}, this.settings);
  }

  decideOutput(
    runId: string,
    path: string,
    approve: boolean,
    reason: string
  ): Promise<IRun> {
    return requestAPI<IRun>(
      `runs/${enc(runId)}/outputs/decide`,
      { method: 'POST', body: { path, approve, reason } },
      this.settings
    );
  }
}
