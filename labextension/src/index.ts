import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  Dialog,
  ICommandPalette,
  MainAreaWidget,
  showDialog
} from '@jupyterlab/apputils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { ReactWidget } from '@jupyterlab/ui-components';
import React from 'react';

import { DShareClient } from './client';
import {
  DEFAULT_SETTINGS,
  IExplorerHost,
  IExplorerSettings
} from './components/context';
import { SkeletonTree } from './components/SkeletonTree';
import { notifyError, notifySuccess } from './notify';
import { volumeEntry } from './workflow';
import { insertIntoWorkflow } from './workflowDoc';
import { DataExplorerWidget } from './widget';

const PLUGIN_ID = 'dshare:plugin';

export namespace CommandIDs {
  export const open = 'dshare:open';
  export const refresh = 'dshare:refresh';
}

function readSettings(
  settings: ISettingRegistry.ISettings | null
): IExplorerSettings {
  if (!settings) {
    return { ...DEFAULT_SETTINGS };
  }
  const c = settings.composite as Partial<IExplorerSettings>;
  return {
    defaultLeaseHours: Number(
      c.defaultLeaseHours ?? DEFAULT_SETTINGS.defaultLeaseHours
    ),
    refreshIntervalSeconds: Number(
      c.refreshIntervalSeconds ?? DEFAULT_SETTINGS.refreshIntervalSeconds
    ),
    mountBase: String(c.mountBase ?? DEFAULT_SETTINGS.mountBase)
  };
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description:
    'DataExplorer: browse, lease and use datasets shared over the dshare ledger.',
  autoStart: true,
  requires: [IDocumentManager],
  optional: [
    ISettingRegistry,
    ICommandPalette,
    ILayoutRestorer,
    IDefaultFileBrowser
  ],
  activate: async (
    app: JupyterFrontEnd,
    docManager: IDocumentManager,
    registry: ISettingRegistry | null,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    fileBrowser: IDefaultFileBrowser | null
  ) => {
    let settings: ISettingRegistry.ISettings | null = null;
    if (registry) {
      try {
        settings = await registry.load(PLUGIN_ID);
      } catch (err) {
        console.warn(
          'dshare: settings could not be loaded; using defaults.',
          err
        );
      }
    }
    const host: IExplorerHost = {
      client: new DShareClient(app.serviceManager.serverSettings),
      settings: readSettings(settings),
      addToWorkflow: async (lease, datasetName) => {
        const entry = volumeEntry(
          lease.id,
          datasetName,
          host.settings.mountBase
        );
        const dir = fileBrowser?.model.path ?? '';
        const path = await insertIntoWorkflow(docManager, dir, entry);
        notifySuccess(`Added ${entry.name} (${entry.path}) to ${path}.`);
      },
      openSkeleton: dataset => {
        const content = ReactWidget.create(
          React.createElement(SkeletonTree, { entries: dataset.skeleton })
        );
        const widget = new MainAreaWidget({ content });
        widget.id = `dshare-skeleton-${dataset.id}`;
        widget.title.label = `${dataset.name} (skeleton)`;
        widget.title.closable = true;
        app.shell.add(widget, 'main');
        app.shell.activateById(widget.id);
      },
      confirm: async (title, body, accept) => {
        const result = await showDialog({
          title,
          body,
          buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: accept })]
        });
        return result.button.accept;
      },
      notifyError,
      notifySuccess
    };

    const widget = new DataExplorerWidget(host);
    widget.title.label = 'DataExplorer';
    app.shell.add(widget, 'left', { rank: 600 });
    restorer?.add(widget, widget.id);

    let timer: ReturnType<typeof setInterval> | undefined;
    const schedule = () => {
      if (timer) {
        clearInterval(timer);
      }
      const s = host.settings.refreshIntervalSeconds;
      if (s > 0) {
        // Refresh only while the panel is visible: a hidden sidebar costs no requests.
        timer = setInterval(
          () => widget.isVisible && widget.refresh(),
          s * 1000
        );
      }
    };
    schedule();
    settings?.changed.connect(() => {
      host.settings = readSettings(settings);
      schedule();
    });

    app.commands.addCommand(CommandIDs.open, {
      label: 'Open DataExplorer',
      caption: 'Show the dshare DataExplorer sidebar',
      describedBy: { args: { type: 'object', properties: {} } },
      execute: () => app.shell.activateById(widget.id)
    });
    app.commands.addCommand(CommandIDs.refresh, {
      label: 'Refresh DataExplorer',
      caption: 'Reload datasets, leases and runs from the ledger',
      describedBy: { args: { type: 'object', properties: {} } },
      execute: () => widget.refresh()
    });
    palette?.addItem({ command: CommandIDs.open, category: 'dshare' });
    palette?.addItem({ command: CommandIDs.refresh, category: 'dshare' });
  }
};

export default plugin;
