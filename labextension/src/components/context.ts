import { IDShareClient } from '../client';
import { IDataset, ILease } from '../types';

/** User preferences from the settings registry (schema/plugin.json). */
export interface IExplorerSettings {
  defaultLeaseHours: number;
  refreshIntervalSeconds: number;
  mountBase: string;
}

export const DEFAULT_SETTINGS: IExplorerSettings = {
  defaultLeaseHours: 4,
  refreshIntervalSeconds: 30,
  mountBase: '/home/jovyan'
};

/** What the components need from JupyterLab, injected so tests can fake it. */
export interface IExplorerHost {
  client: IDShareClient;
  settings: IExplorerSettings;
  addToWorkflow(lease: ILease, datasetName: string): Promise<void>;
  openSkeleton(dataset: IDataset): void;
  /** Ask the user; resolves true only on an explicit yes. */
  confirm(title: string, body: string, accept: string): Promise<boolean>;
  notifyError(action: string, error: unknown): void;
  notifySuccess(text: string): void;
}
