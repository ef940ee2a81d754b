import { ReactWidget, UseSignal } from '@jupyterlab/ui-components';
import { Signal } from '@lumino/signaling';
import React from 'react';

import { DataExplorer } from './components/DataExplorer';
import { IExplorerHost } from './components/context';

/** The sidebar widget: a Lumino shell around the React DataExplorer. */
export class DataExplorerWidget extends ReactWidget {
  private _token = 0;
  private readonly _refreshed = new Signal<this, number>(this);

  constructor(private readonly host: IExplorerHost) {
    super();
    this.id = 'dshare-data-explorer';
    this.addClass('jp-dshare-widget');
    this.title.caption = 'DataExplorer';
  }

  /** Ask every section to reload from the server. */
  refresh(): void {
    this._token += 1;
    this._refreshed.emit(this._token);
  }

  render(): JSX.Element {
    return (
      <UseSignal signal={this._refreshed} initialArgs={this._token}>
        {(_, token) => (
          <DataExplorer host={this.host} refreshToken={token ?? 0} />
        )}
      </UseSignal>
    );
  }
}
