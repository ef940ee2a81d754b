import React from 'react';

import { outputStatus, shortDigest } from '../outputs';
import { formatBytes } from '../skeleton';
import { IOutput } from '../types';

/** The files a run wrote and what the output gate (and the owners) decided for each. */
export function OutputList(props: {
  runName: string;
  outputs: IOutput[];
}): JSX.Element | null {
  if (props.outputs.length === 0) {
    return null;
  }
  return (
    <ul
      className="jp-dshare-outputs"
      aria-label={`Outputs of ${props.runName}`}
      data-testid="dshare-outputs"
    >
      {props.outputs.map(o => (
        <li
          key={o.path}
          data-testid="dshare-output-item"
          data-decision={o.decision}
          data-path={o.path}
        >
          <code>{o.path}</code> · {formatBytes(o.size)} ·{' '}
          <span title={`SHA-256 ${o.sha256}`}>{shortDigest(o.sha256)}</span>
          <div className="jp-dshare-meta" data-testid="dshare-output-status">
            {outputStatus(o)}
          </div>
        </li>
      ))}
    </ul>
  );
}
