import { IDocumentManager } from '@jupyterlab/docmanager';

import { volumeEntry } from '../workflow';
import { insertIntoWorkflow } from '../workflowDoc';

const WORKFLOW = 'jobs:\n- command: ls\n';

/** A document manager with one open workflow.yaml, recording saves. */
function fakeDocs(dirty: boolean) {
  let text = WORKFLOW;
  const context = {
    ready: Promise.resolve(),
    model: {
      dirty,
      toString: () => text,
      fromString: (t: string) => {
        text = t;
      }
    },
    save: jest.fn(async () => undefined)
  };
  const docs = {
    services: {
      contents: {
        get: jest.fn(async () => ({ type: 'file' })),
        save: jest.fn()
      }
    },
    openOrReveal: jest.fn(() => ({ context }))
  };
  return {
    docs: docs as unknown as IDocumentManager,
    context,
    text: () => text
  };
}

describe('insertIntoWorkflow', () => {
  const entry = volumeEntry('L-1', 'UiS lorem corpus');

  it('saves an open workflow.yaml it edited, so %dshare_run reads the volume', async () => {
    const { docs, context, text } = fakeDocs(false);
    expect(await insertIntoWorkflow(docs, 'exp', entry)).toBe(
      'exp/workflow.yaml'
    );
    expect(text()).toContain('id: L-1');
    expect(context.save).toHaveBeenCalledTimes(1);
  });

  it('leaves saving to the person when the file held unsaved edits of theirs', async () => {
    const { docs, context, text } = fakeDocs(true);
    await insertIntoWorkflow(docs, '', entry);
    expect(text()).toContain('path: /home/jovyan/uis-lorem-corpus');
    expect(context.save).not.toHaveBeenCalled();
  });
});
