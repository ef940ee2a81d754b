import React from 'react';

import { IDataset, IMockPreview } from '../types';
import { InlineError, Loading } from './common';
import { IExplorerHost } from './context';

export const MOCK_LABEL = 'Mock data — synthetic, not the real rows';
export const PREVIEW_ROWS = 10;

export const SYNTHESIZE_EXPLANATION =
  'Your broker reads the first table of this dataset and stores, as the mock ranges of ' +
  'its columns, the 5th to 95th percentiles of numbers and dates (never the extremes, ' +
  'and from at least 10 values), the categories seen at least 10 times and the share ' +
  'of empty cells. Columns tagged pii or identifier, and columns your redaction policy ' +
  'hides from a lessee, get nothing from the data. The ranges are on the ledger, where ' +
  'every member organization reads them.';

export interface IMockPreviewProps {
  host: IExplorerHost;
  dataset: IDataset;
  /** Owner admins may derive the ranges from the real rows. */
  canSynthesize?: boolean;
  onSynthesized?(): void;
}

function cell(value: string | number | boolean | null): string {
  return value === null ? '' : String(value);
}

/** The first rows of a dataset's mock, labelled as such; no lease needed. Every value
 * comes from the broker as data and is rendered as text. */
export function MockPreview(props: IMockPreviewProps): JSX.Element {
  const { host, dataset } = props;
  const [preview, setPreview] = React.useState<IMockPreview | null>(null);
  const [error, setError] = React.useState<unknown>(null);

  React.useEffect(() => {
    let cancelled = false;
    setPreview(null);
    setError(null);
    host.client.mockPreview(dataset.id, PREVIEW_ROWS).then(
      p => {
        if (!cancelled) {
          setPreview(p);
        }
      },
      err => {
        if (!cancelled) {
          setError(err);
        }
      }
    );
    return () => {
      cancelled = true;
    };
  }, [dataset.id, dataset.updated_at]);

  const synthesize = async () => {
    const ok = await host.confirm(
      `Make the mock of ${dataset.name} from its data?`,
      SYNTHESIZE_EXPLANATION,
      'Make from data'
    );
    if (!ok) {
      return;
    }
    try {
      await host.client.synthesizeMock(dataset.id);
      host.notifySuccess(`The mock of ${dataset.name} now follows its data.`);
      props.onSynthesized?.();
    } catch (err) {
      host.notifyError('Making the mock from the data', err);
    }
  };

  return (
    <section aria-label="Mock preview" data-testid="dshare-mock-preview">
      <h3>Mock preview</h3>
      {props.canSynthesize && (
        <button
          className="jp-mod-styled"
          data-testid="dshare-mock-synthesize"
          onClick={synthesize}
        >
          Make the mock from the data
        </button>
      )}
      <div className="jp-dshare-mock-label" data-testid="dshare-mock-label">
        {MOCK_LABEL}
      </div>
      {error ? (
        <InlineError error={error} />
      ) : !preview ? (
        <Loading label="Making the mock…" />
      ) : (
        <>
          <div className="jp-dshare-meta">
            {preview.rows.length} mock rows of {preview.file}, made from the
            schema and the owner's value ranges. <code>%dshare_run --mock</code>{' '}
            runs a workflow on them without a lease.
          </div>
          <div className="jp-dshare-mock-scroll">
            <table
              className="jp-dshare-table jp-dshare-mock-table"
              data-testid="dshare-mock-table"
              aria-label={MOCK_LABEL}
            >
              <thead>
                <tr>
                  {preview.columns.map(c => (
                    <th scope="col" key={c.name}>
                      {c.name}
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {preview.rows.map((row, i) => (
                  <tr key={i} data-testid="dshare-mock-row">
                    {row.map((value, j) => (
                      <td key={j}>{cell(value)}</td>
                    ))}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
    </section>
  );
}
