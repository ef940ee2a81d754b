import { PathExt } from '@jupyterlab/coreutils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { IDocumentWidget } from '@jupyterlab/docregistry';
import { Contents } from '@jupyterlab/services';

import {
  addVolume,
  IVolumeEntry,
  WORKFLOW_FILE,
  workflowTemplate
} from './workflow';

/**
 * Put a volume entry into workflow.yaml in `dir`: edit the open document when it
 * is open (so unsaved edits are kept and the user sees the change), otherwise
 * create the file from the template, then open it.
 */
export async function insertIntoWorkflow(
  docManager: IDocumentManager,
  dir: string,
  entry: IVolumeEntry
): Promise<string> {
  const path = PathExt.join(dir, WORKFLOW_FILE);
  let exists = true;
  try {
    await docManager.services.contents.get(path, { content: false });
  } catch {
    exists = false;
  }
  if (!exists) {
    const model: Partial<Contents.IModel> = {
      type: 'file',
      format: 'text',
      content: workflowTemplate(entry)
    };
    await docManager.services.contents.save(path, model);
    docManager.openOrReveal(path);
    return path;
  }
  const widget = docManager.openOrReveal(path) as IDocumentWidget | undefined;
  if (!widget) {
    throw new Error(`Could not open ${path} in an editor.`);
  }
  await widget.context.ready;
  const model = widget.context.model;
  const hadUnsavedEdits = model.dirty;
  // addVolume throws a clear error on invalid YAML before anything is changed.
  model.fromString(addVolume(model.toString(), entry));
  // %dshare_run reads the file on disk: save it, unless that would also save
  // edits of the person's own that they have not chosen to save yet.
  if (!hadUnsavedEdits) {
    await widget.context.save();
  }
  return path;
}
