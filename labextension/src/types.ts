/**
 * Shapes of the dshare REST API (docs/interfaces.md, sections 3 and 4).
 */

export type LeaseState =
  'pending' | 'active' | 'released' | 'rejected' | 'expired';

export interface IColumn {
  name: string;
  type: string;
  tags: string[];
  /** The owner's value ranges for the column's mock (none: the defaults). */
  mock?: IMockRanges;
}

export interface IMockRanges {
  min?: number | string;
  max?: number | string;
  values?: string[];
  pattern?: string;
  null_fraction?: number;
}

/** GET datasets/{id}/mock: synthetic rows from the public schema, never the real rows. */
export interface IMockPreview {
  dataset_id: string;
  mock: true;
  label: string;
  seed: string;
  /** The table of the skeleton these rows stand for (what a mock run reads there). */
  file: string;
  columns: IColumn[];
  rows: (string | number | boolean | null)[][];
}

export interface ISkeletonEntry {
  path: string;
  size: number;
}

export interface IPolicy {
  max_duration_s: number;
  exclusive: boolean;
  /** null: no limit (the ledger's own convention). */
  max_concurrent: number | null;
  allowed_orgs: string[];
  approval_required: boolean;
  /** Runs over the dataset need code its owner approved (absent: not required). */
  code_approval_required?: boolean;
  interactive: boolean;
}

export interface IDataset {
  id: string;
  name: string;
  description: string;
  owner_org: string;
  tags: string[];
  storage_type: string;
  columns: IColumn[];
  skeleton: ISkeletonEntry[];
  policy: IPolicy;
  /** The owner's Rego redaction policy ("" or null: none). */
  redaction?: string | null;
  state: string;
  created_at: string;
  updated_at: string;
  active_leases: number;
}

export interface IStorage {
  type: string;
  details: Record<string, string>;
}

/** What an org admin sends to register (all fields) or update (a subset). */
export interface IDatasetIn {
  name?: string;
  description?: string;
  tags?: string[];
  columns?: IColumn[];
  skeleton?: ISkeletonEntry[];
  policy?: Partial<IPolicy>;
  redaction?: string;
  storage?: IStorage;
}

export interface ILease {
  id: string;
  asset_id: string;
  asset_name: string;
  owner_org: string;
  lessee_org: string;
  lessee_user: string;
  purpose: string;
  state: LeaseState;
  requested_at: string;
  granted_at: string | null;
  expires_at: string | null;
  duration_s: number;
}

export interface IJob {
  name: string;
  state: string;
  exit_code: number | null;
  started_at: string | null;
  finished_at: string | null;
}

export interface IRun {
  id: string;
  name: string;
  user: string;
  org: string;
  lease_ids: string[];
  spec_sha256: string;
  state: string;
  outcome: string | null;
  started_at: string | null;
  finished_at: string | null;
  jobs?: IJob[];
  /** What the output gate decided for each file the run wrote. */
  outputs?: IOutput[];
  /** A mock run (%dshare_run --mock): its jobs read mock data, its outputs are mock
   * results under ~/mock-runs/<id>/. */
  mock?: boolean;
  dataset_ids?: string[];
}

export interface IOutputCheck {
  name: string;
  passed: boolean;
  message: string;
}

/** One owner organization's word on a held file. */
export interface IOutputDecision {
  approve: boolean;
  reason: string;
  actor: string;
  at: string;
}

export interface IOutput {
  path: string;
  sha256: string;
  size: number;
  decision: 'released' | 'held' | 'denied';
  held_by?: string[];
  checks?: IOutputCheck[];
  decisions?: Record<string, IOutputDecision>;
}

export interface IHistoryEntry {
  tx_id: string;
  timestamp: string;
  org: string;
  actor: string;
  action: string;
  asset?: unknown;
}

export interface IMe {
  user: string;
  org: string;
  roles: string[];
  scopes: string[];
}

export interface IPage<T> {
  items: T[];
  bookmark?: string;
}

export interface IDatasetFilters {
  q?: string;
  org?: string;
  tag?: string;
  storage?: string;
  available?: boolean;
  limit?: number;
  bookmark?: string;
}

/** What POST /dshare/api/views did to ~/datasets. */
export interface IViewsRefresh {
  items: { lease_id: string; name: string; dir: string; expires_at: string }[];
  unavailable: { lease_id: string; code: string; message: string }[];
  linked: string[];
  pruned: string[];
}

/** One file of a code approval request (content only in an admin's review). */
export interface ICodeFile {
  path: string;
  sha256: string;
  /** The text; null when binary or too large to show. */
  content?: string | null;
}

/** A code approval request: per owner organization and code identity. */
export interface ICodeApproval {
  id: string;
  owner_org: string;
  dataset_ids: string[];
  org: string;
  user: string;
  code_sha256: string;
  state: 'pending' | 'approved' | 'denied';
  requested_at: string;
  decided_at: string | null;
  decided_by: { org: string; actor: string } | null;
  reason: string | null;
  files: ICodeFile[];
  spec?: string;
  /** Review only: the latest earlier approval the diff is against. */
  previous?: { id: string; decided_at: string | null } | null;
  diff?: string;
}

/** POST approvals: the requests made, and the owners not asked again with why. */
export interface ICodeApprovalReply {
  items: ICodeApproval[];
  skipped: { owner_org: string; code: string; message: string }[];
  code_sha256: string;
}
