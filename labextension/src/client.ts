import { ServerConnection } from '@jupyterlab/services';

import { requestAPI } from './request';
import {
  ICodeApproval,
  ICodeApprovalReply,
  IDataset,
  IDatasetFilters,
  IDatasetIn,
  IHistoryEntry,
  ILease,
  IMe,
  IMockPreview,
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
  /** Mock rows of a tabular dataset: any scientist, no lease. */
  mockPreview(id: string, rows?: number): Promise<IMockPreview>;
  /** Owner admins: the columns' mock ranges from the real rows (opt-in). */
  synthesizeMock(id: string): Promise<IDataset>;
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
  /** Ask the data's owners to approve the code of a workflow file of the home. */
  requestApproval(workflowPath: string): Promise<ICodeApprovalReply>;
  /** mine: the user's requests; review (admins): those to the user's organization. */
  listApprovals(scope: 'mine' | 'review'): Promise<IPage<ICodeApproval>>;
  decideApproval(
    id: string,
    decision: 'approve' | 'deny',
    reason: string
  ): Promise<ICodeApproval>;
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

  mockPreview(id: string, rows = 10): Promise<IMockPreview> {
    return requestAPI<IMockPreview>(
      `datasets/${enc(id)}/mock`,
      { query: { rows: String(rows) } },
      this.settings
    );
  }

  synthesizeMock(id: string): Promise<IDataset> {
    return requestAPI<IDataset>(
      `datasets/${enc(id)}/mock/synthesize`,
      { method: 'POST', body: {} },
      this.settings
    );
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

  requestApproval(workflowPath: string): Promise<ICodeApprovalReply> {
    return requestAPI<ICodeApprovalReply>(
      'approvals',
      { method: 'POST', body: { path: workflowPath } },
      this.settings
    );
  }

  listApprovals(scope: 'mine' | 'review'): Promise<IPage<ICodeApproval>> {
    return requestAPI<IPage<ICodeApproval>>(
      'approvals',
      { query: { scope } },
      this.settings
    );
  }

  decideApproval(
    id: string,
    decision: 'approve' | 'deny',
    reason: string
  ): Promise<ICodeApproval> {
    return requestAPI<ICodeApproval>(
      `approvals/${enc(id)}/decision`,
      { method: 'POST', body: { decision, reason } },
      this.settings
    );
  }
}
