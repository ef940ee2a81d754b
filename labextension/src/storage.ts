import { IColumn, IDatasetIn, IPolicy, ISkeletonEntry } from './types';

/** One input of the storage part of the register form. */
export interface IStorageField {
  key: string;
  label: string;
  /** Sent once to the broker, which seals it; never kept by the browser. */
  secret?: boolean;
  required?: boolean;
  placeholder?: string;
}

/**
 * The storage types the brokers can materialize (DESIGN.md) and what each needs.
 * The broker validates again; this only spares a round trip for missing fields.
 */
export const STORAGE_TYPES: Record<
  string,
  { label: string; fields: IStorageField[] }
> = {
  local: {
    label: 'Local directory (embedded mode)',
    fields: [
      { key: 'path', label: 'Directory on the broker host', required: true }
    ]
  },
  hostpath: {
    label: 'Kubernetes node directory',
    fields: [
      { key: 'node', label: 'Node name', required: true },
      { key: 'path', label: 'Directory on the node', required: true }
    ]
  },
  nfs: {
    label: 'NFS export',
    fields: [
      { key: 'server', label: 'NFS server', required: true },
      { key: 'path', label: 'Exported path', required: true }
    ]
  },
  azurefile: {
    label: 'Azure Files share',
    fields: [
      { key: 'account_name', label: 'Storage account name', required: true },
      { key: 'share_name', label: 'File share name', required: true },
      {
        key: 'account_key',
        label: 'Storage account key',
        required: true,
        secret: true
      }
    ]
  },
  s3: {
    label: 'S3 bucket',
    fields: [
      { key: 'bucket', label: 'Bucket', required: true },
      { key: 'prefix', label: 'Prefix' },
      { key: 'endpoint', label: 'Endpoint URL', placeholder: 'default: AWS' },
      { key: 'region', label: 'Region' },
      {
        key: 'access_key_id',
        label: 'Access key id',
        required: true,
        secret: true
      },
      {
        key: 'secret_access_key',
        label: 'Secret access key',
        required: true,
        secret: true
      }
    ]
  },
  gcs: {
    label: 'Google Cloud Storage bucket',
    fields: [
      { key: 'bucket', label: 'Bucket', required: true },
      { key: 'prefix', label: 'Prefix' },
      {
        key: 'service_account_json',
        label: 'Service account key (JSON)',
        required: true,
        secret: true
      }
    ]
  }
};

/** What the register/update form holds as text before it becomes a DatasetIn. */
export interface IDatasetForm {
  name: string;
  description: string;
  tags: string;
  columns: string;
  skeleton: string;
  maxDurationHours: string;
  exclusive: boolean;
  maxConcurrent: string;
  allowedOrgs: string;
  approvalRequired: boolean;
  /** Runs over the dataset need code an admin of the owner approved. */
  codeApprovalRequired: boolean;
  interactive: boolean;
  /** Rego source (package dshare.redaction); empty for every column as it is. */
  redaction: string;
  storageType: string;
  storage: Record<string, string>;
}

export function emptyForm(storageType = 'local'): IDatasetForm {
  return {
    name: '',
    description: '',
    tags: '',
    columns: '',
    skeleton: '',
    maxDurationHours: '24',
    exclusive: false,
    maxConcurrent: '0',
    allowedOrgs: '',
    approvalRequired: false,
    codeApprovalRequired: false,
    interactive: false,
    redaction: '',
    storageType,
    storage: {}
  };
}

/** A refusal of the form, naming the field so the form can point at it. */
export class FormError extends Error {
  constructor(
    readonly field: string,
    message: string
  ) {
    super(message);
  }
}

function splitList(text: string): string[] {
  return text
    .split(',')
    .map(s => s.trim())
    .filter(Boolean);
}

/** "name:type[:tag1|tag2]" one per line. */
function parseColumns(text: string): IColumn[] {
  const columns: IColumn[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line) {
      return;
    }
    const [name, type, tags] = line.split(':').map(s => s.trim());
    if (!name || !type) {
      throw new FormError(
        'columns',
        `Columns line ${i + 1}: write "name:type" or "name:type:tag1|tag2", got "${line}".`
      );
    }
    columns.push({
      name,
      type,
      tags: tags ? tags.split('|').map(t => t.trim()) : []
    });
  });
  return columns;
}

/** "path size" one per line; directories end with "/" and need no size. */
function parseSkeleton(text: string): ISkeletonEntry[] {
  const entries: ISkeletonEntry[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line) {
      return;
    }
    const m = /^(\S+)(?:\s+(\d+))?$/.exec(line);
    if (!m) {
      throw new FormError(
        'skeleton',
        `Skeleton line ${i + 1}: write "path size_in_bytes" (or "dir/"), got "${line}".`
      );
    }
    entries.push({ path: m[1], size: m[2] ? Number(m[2]) : 0 });
  });
  return entries;
}

/**
 * Turn the form into the API's DatasetIn. With `includeStorage` false (an update
 * that does not touch storage) the storage part is left out entirely.
 */
export function formToDatasetIn(
  form: IDatasetForm,
  includeStorage = true
): IDatasetIn {
  const name = form.name.trim();
  if (!name) {
    throw new FormError('name', 'Name is required.');
  }
  const hours = Number(form.maxDurationHours);
  if (!Number.isFinite(hours) || hours <= 0) {
    throw new FormError(
      'maxDurationHours',
      'Maximum lease duration must be a positive number of hours.'
    );
  }
  const maxConcurrent = Number(form.maxConcurrent || '0');
  if (!Number.isInteger(maxConcurrent) || maxConcurrent < 0) {
    throw new FormError(
      'maxConcurrent',
      'Maximum concurrent leases must be a whole number (0 = no limit).'
    );
  }
  const policy: Partial<IPolicy> = {
    max_duration_s: Math.round(hours * 3600),
    exclusive: form.exclusive,
    // The ledger spells "no limit" as null and refuses 0.
    max_concurrent: maxConcurrent === 0 ? null : maxConcurrent,
    allowed_orgs: splitList(form.allowedOrgs),
    approval_required: form.approvalRequired,
    code_approval_required: form.codeApprovalRequired,
    interactive: form.interactive
  };
  const body: IDatasetIn = {
    name,
    description: form.description.trim(),
    tags: splitList(form.tags),
    columns: parseColumns(form.columns),
    skeleton: parseSkeleton(form.skeleton),
    policy,
    // Sent as written: the owner's broker compiles it and names the line of an error.
    redaction: form.redaction
  };
  if (includeStorage) {
    const spec = STORAGE_TYPES[form.storageType];
    if (!spec) {
      throw new FormError(
        'storageType',
        `Unknown storage type "${form.storageType}".`
      );
    }
    const details: Record<string, string> = {};
    for (const field of spec.fields) {
      const value = (form.storage[field.key] ?? '').trim();
      if (field.required && !value) {
        throw new FormError(
          `storage.${field.key}`,
          `${field.label} is required.`
        );
      }
      if (value) {
        details[field.key] = value;
      }
    }
    body.storage = { type: form.storageType, details };
  }
  return body;
}
