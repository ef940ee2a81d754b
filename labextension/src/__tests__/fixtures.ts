import { IExplorerHost } from '../components/context';
import { IDShareClient } from '../client';
import { IDataset, ILease, IOutput, IRun } from '../types';

export function dataset(patch: Partial<IDataset> = {}): IDataset {
  return {
    id: 'ds-1',
    name: 'Word counts',
    description: 'Counts of words per document',
    owner_org: 'UiS',
    tags: ['text', 'nlp'],
    storage_type: 'local',
    columns: [{ name: 'word', type: 'string', tags: ['pii'] }],
    skeleton: [
      { path: 'data/', size: 0 },
      { path: 'data/a.csv', size: 2048 },
      { path: 'README', size: 10 }
    ],
    policy: {
      max_duration_s: 7200,
      exclusive: false,
      max_concurrent: 0,
      allowed_orgs: [],
      approval_required: false,
      interactive: false
    },
    state: 'active',
    created_at: '2026-01-01T00:00:00Z',
    updated_at: '2026-01-01T00:00:00Z',
    active_leases: 0,
    ...patch
  };
}

export function lease(patch: Partial<ILease> = {}): ILease {
  return {
    id: 'lease-1',
    asset_id: 'ds-1',
    asset_name: 'Word counts',
    owner_org: 'UiS',
    lessee_org: 'UiO',
    lessee_user: 'alice',
    purpose: 'thesis',
    state: 'active',
    requested_at: '2026-01-01T00:00:00Z',
    granted_at: '2026-01-01T00:00:00Z',
    expires_at: new Date(Date.now() + 3600_000).toISOString(),
    duration_s: 3600,
    ...patch
  };
}

export function run(patch: Partial<IRun> = {}): IRun {
  return {
    id: 'R-1',
    name: 'count',
    user: 'alice',
    org: 'UiO',
    lease_ids: ['lease-1'],
    spec_sha256: '',
    state: 'finished',
    outcome: 'succeeded',
    started_at: null,
    finished_at: '2026-01-01T00:10:00Z',
    jobs: [],
    ...patch
  };
}

export function output(patch: Partial<IOutput> = {}): IOutput {
  return {
    path: 'out/copy.txt',
    sha256: 'ab'.repeat(32),
    size: 4096,
    decision: 'held',
    held_by: ['UiS'],
    checks: [
      {
        name: 'verbatim_input',
        passed: false,
        message: 'contains 4096 bytes copied from a leased file'
      }
    ],
    decisions: {},
    ...patch
  };
}

/** A client whose every method is a jest mock with a harmless default. */
export function fakeClient(
  patch: Partial<IDShareClient> = {}
): jest.Mocked<IDShareClient> {
  const c: IDShareClient = {
    me: async () => ({
      user: 'alice',
      org: 'UiO',
      roles: ['user'],
      scopes: []
    }),
    listDatasets: async () => ({ items: [dataset()] }),
    getDataset: async () => dataset(),
    history: async () => ({ items: [] }),
    mockPreview: async () => ({
      dataset_id: 'ds-1',
      mock: true,
      label: 'Mock data — synthetic, not the real rows',
      seed: '0'.repeat(64),
      file: 'part-0.csv',
      columns: [],
      rows: []
    }),
    synthesizeMock: async () => dataset(),
    createDataset: async () => dataset(),
    updateDataset: async () => dataset(),
    retireDataset: async () => dataset({ state: 'retired' }),
    listLeases: async () => ({ items: [] }),
    requestLease: async () => lease(),
    releaseLease: async () => lease({ state: 'released' }),
    decideLease: async () => lease(),
    listRuns: async () => ({ items: [] }),
    getRun: async () => {
      throw new Error('not used');
    },
    jobLogs: async () => '',
    refreshViews: async () => ({
      items: [],
      unavailable: [],
      linked: [],
      pruned: []
    }),
    heldOutputs: async () => ({ items: [] }),
    decideOutput: async () => {
      throw new Error('not used');
    },
    requestApproval: async () => ({ items: [], skipped: [], code_sha256: '' }),
    listApprovals: async () => ({ items: [] }),
    decideApproval: async () => {
      throw new Error('not used');
    },
    ...patch
  };
  for (const k of Object.keys(c) as (keyof IDShareClient)[]) {
    (c as any)[k] = jest.fn(c[k] as (...args: any[]) => any);
  }
  return c as jest.Mocked<IDShareClient>;
}

export function fakeHost(
  client: IDShareClient,
  patch: Partial<IExplorerHost> = {}
) {
  return {
    client,
    settings: {
      defaultLeaseHours: 1,
      refreshIntervalSeconds: 0,
      mountBase: '/home/jovyan'
    },
    addToWorkflow: jest.fn(async () => undefined),
    openSkeleton: jest.fn(),
    confirm: jest.fn(async () => true),
    notifyError: jest.fn(),
    notifySuccess: jest.fn(),
    ...patch
  };
}
