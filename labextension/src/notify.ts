import { Notification } from '@jupyterlab/apputils';

import { DShareError } from './request';

/** The message a person reads for any failure: the server's own words when it gave any. */
export function errorText(error: unknown): string {
  if (error instanceof DShareError) {
    return error.display;
  }
  if (error instanceof Error) {
    return error.message;
  }
  return String(error);
}

/** Show a failure in JupyterLab's notification area; returns the text shown. */
export function notifyError(action: string, error: unknown): string {
  const text = `${action} failed: ${errorText(error)}`;
  Notification.error(text, { autoClose: false });
  return text;
}

export function notifySuccess(text: string): void {
  Notification.success(text, { autoClose: 5000 });
}
