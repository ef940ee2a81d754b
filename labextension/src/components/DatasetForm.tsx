import React from 'react';

import {
  emptyForm,
  FormError,
  formToDatasetIn,
  IDatasetForm,
  STORAGE_TYPES
} from '../storage';
import { errorText } from '../notify';
import { DShareError } from '../request';
import { IDataset } from '../types';
import { IExplorerHost } from './context';
import { keepMockRanges } from '../mock';

/** Pre-fill the form from a dataset being updated (storage is never returned). */
export function formFromDataset(d: IDataset): IDatasetForm {
  return {
    ...emptyForm(d.storage_type),
    name: d.name,
    description: d.description,
    tags: d.tags.join(', '),
    columns: d.columns
      .map(
        c => `${c.name}:${c.type}${c.tags.length ? ':' + c.tags.join('|') : ''}`
      )
      .join('\n'),
    skeleton: d.skeleton
      .map(s => (s.path.endsWith('/') ? s.path : `${s.path} ${s.size}`))
      .join('\n'),
    maxDurationHours: String(d.policy.max_duration_s / 3600),
    exclusive: d.policy.exclusive,
    maxConcurrent: String(d.policy.max_concurrent ?? 0),
    allowedOrgs: d.policy.allowed_orgs.join(', '),
    approvalRequired: d.policy.approval_required,
    codeApprovalRequired: d.policy.code_approval_required ?? false,
    interactive: d.policy.interactive,
    redaction: d.redaction ?? ''
  };
}

/** The broker's name for a field (`storage.details.path`) as this form's key. */
const SERVER_FIELDS: Record<string, string> = {
  'policy.max_duration_s': 'maxDurationHours',
  'policy.max_concurrent': 'maxConcurrent',
  'policy.allowed_orgs': 'allowedOrgs',
  'policy.exclusive': 'exclusive',
  'policy.approval_required': 'approvalRequired',
  'policy.code_approval_required': 'codeApprovalRequired',
  'policy.interactive': 'interactive',
  'storage.type': 'storageType',
  storage_type: 'storageType'
};

export function formField(serverField: string | undefined): string {
  if (!serverField) {
    return '';
  }
  if (serverField in SERVER_FIELDS) {
    return SERVER_FIELDS[serverField];
  }
  const storage = /^storage\.details\.([\w-]+)$/.exec(serverField);
  if (storage) {
    return `storage.${storage[1]}`;
  }
  // "columns[2].name" and the like point at the whole text area.
  return serverField.split(/[.[]/)[0];
}

/**
 * Register (no `existing`) or update a dataset. Secret storage fields live only
 * in this component's state: sent once, cleared after submit, never stored.
 */
export function DatasetForm(props: {
  host: IExplorerHost;
  existing?: IDataset;
  onDone(dataset: IDataset): void;
  onCancel(): void;
}): JSX.Element {
  const { host, existing } = props;
  const [form, setForm] = React.useState<IDatasetForm>(() =>
    existing ? formFromDataset(existing) : emptyForm()
  );
  const [replaceStorage, setReplaceStorage] = React.useState(!existing);
  const [problem, setProblem] = React.useState<FormError | null>(null);
  const [busy, setBusy] = React.useState(false);
  const set = (patch: Partial<IDatasetForm>) => setForm({ ...form, ...patch });
  const spec = STORAGE_TYPES[form.storageType];

  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    let body;
    try {
      body = formToDatasetIn(form, replaceStorage);
      if (existing && body.columns) {
        // The form edits names, types and tags; mock ranges stay as the ledger has them.
        body.columns = keepMockRanges(body.columns, existing.columns);
      }
    } catch (err) {
      if (err instanceof FormError) {
        setProblem(err);
        return;
      }
      throw err;
    }
    setProblem(null);
    setBusy(true);
    try {
      const saved = existing
        ? await host.client.updateDataset(existing.id, body)
        : await host.client.createDataset(body);
      host.notifySuccess(
        `${existing ? 'Updated' : 'Registered'} ${saved.name}.`
      );
      props.onDone(saved);
    } catch (err) {
      // Shown in the form too, with the field the server named marked invalid.
      const field = err instanceof DShareError ? formField(err.field) : '';
      setProblem(new FormError(field, errorText(err)));
      host.notifyError(
        existing ? 'Updating the dataset' : 'Registering the dataset',
        err
      );
    } finally {
      // Whatever happened, the secrets leave the browser's memory with this form.
      setForm(f => ({ ...f, storage: {} }));
      setBusy(false);
    }
  };

  const text = (
    key: keyof IDatasetForm,
    label: string,
    opts: { area?: boolean; hint?: string } = {}
  ) => {
    const id = `dshare-field-${key}`;
    const invalid = problem?.field === key;
    const common = {
      id,
      className: 'jp-mod-styled',
      'data-testid': id,
      'aria-invalid': invalid,
      value: form[key] as string,
      onChange: (
        e: React.ChangeEvent<HTMLInputElement | HTMLTextAreaElement>
      ) => set({ [key]: e.target.value } as Partial<IDatasetForm>)
    };
    return (
      <label htmlFor={id}>
        {label}
        {opts.hint && <span className="jp-dshare-hint"> {opts.hint}</span>}
        {opts.area ? <textarea rows={3} {...common} /> : <input {...common} />}
      </label>
    );
  };
  const check = (key: keyof IDatasetForm, label: string) => (
    <label className="jp-dshare-check">
      <input
        type="checkbox"
        data-testid={`dshare-field-${key}`}
        checked={form[key] as boolean}
        onChange={e =>
          set({ [key]: e.target.checked } as Partial<IDatasetForm>)
        }
      />{' '}
      {label}
    </label>
  );

  return (
    <form
      className="jp-dshare-form"
      onSubmit={submit}
      aria-label={existing ? `Update ${existing.name}` : 'Register a dataset'}
      data-testid="dshare-dataset-form"
      autoComplete="off"
    >
      <h3>{existing ? `Update ${existing.name}` : 'Register a dataset'}</h3>
      {text('name', 'Name')}
      {text('description', 'Description', { area: true })}
      {text('tags', 'Tags', { hint: '(comma separated)' })}
      {text('columns', 'Columns', {
        area: true,
        hint: '(name:type:tag1|tag2, one a line)'
      })}
      {text('skeleton', 'Directory skeleton', {
        area: true,
        hint: '(path size, one a line; dir/ for folders)'
      })}
      <fieldset>
        <legend>Lease policy</legend>
        {text('maxDurationHours', 'Longest lease (hours)')}
        {text('maxConcurrent', 'Concurrent leases (0 = no limit)')}
        {text('allowedOrgs', 'Allowed organizations', {
          hint: '(comma separated; empty = any)'
        })}
        {check('exclusive', 'Exclusive (one lessee at a time)')}
        {check('approvalRequired', 'I approve each lease')}
        {check('codeApprovalRequired', 'I approve the code of each run')}
        {check('interactive', 'Allow read-only mounts in notebook servers')}
      </fieldset>
      <fieldset>
        <legend>Column redaction</legend>
        {text('redaction', 'Redaction policy (Rego)', {
          area: true,
          hint: '(package dshare.redaction; action := "hash" | "mask" | "remove" per column; empty = none)'
        })}
      </fieldset>
      <fieldset>
        <legend>Storage (sealed by your organization’s broker)</legend>
        {existing && (
          <label className="jp-dshare-check">
            <input
              type="checkbox"
              data-testid="dshare-replace-storage"
              checked={replaceStorage}
              onChange={e => setReplaceStorage(e.target.checked)}
            />{' '}
            Replace storage details
          </label>
        )}
        {replaceStorage && (
          <>
            <label htmlFor="dshare-field-storageType">
              Storage type
              <select
                id="dshare-field-storageType"
                className="jp-mod-styled"
                data-testid="dshare-field-storageType"
                value={form.storageType}
                onChange={e =>
                  set({ storageType: e.target.value, storage: {} })
                }
              >
                {Object.entries(STORAGE_TYPES).map(([k, v]) => (
                  <option key={k} value={k}>
                    {v.label}
                  </option>
                ))}
              </select>
            </label>
            {spec?.fields.map(f => {
              const id = `dshare-field-storage.${f.key}`;
              return (
                <label key={f.key} htmlFor={id}>
                  {f.label}
                  {f.required ? ' *' : ''}
                  <input
                    id={id}
                    className="jp-mod-styled"
                    data-testid={id}
                    type={f.secret ? 'password' : 'text'}
                    autoComplete={f.secret ? 'new-password' : 'off'}
                    placeholder={f.placeholder}
                    aria-invalid={problem?.field === `storage.${f.key}`}
                    value={form.storage[f.key] ?? ''}
                    onChange={e =>
                      set({
                        storage: { ...form.storage, [f.key]: e.target.value }
                      })
                    }
                  />
                </label>
              );
            })}
          </>
        )}
      </fieldset>
      {problem && (
        <div
          className="jp-dshare-error"
          role="alert"
          data-testid="dshare-form-error"
        >
          {problem.message}
        </div>
      )}
      <div className="jp-dshare-actions">
        <button
          type="submit"
          className="jp-mod-styled jp-mod-accept"
          disabled={busy}
          data-testid="dshare-dataset-submit"
        >
          {existing ? 'Save' : 'Register'}
        </button>
        <button
          type="button"
          className="jp-mod-styled"
          onClick={props.onCancel}
        >
          Cancel
        </button>
      </div>
    </form>
  );
}
