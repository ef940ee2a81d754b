import { isMap, isScalar, isSeq, parseDocument, YAMLMap, YAMLSeq } from 'yaml';

/** One entry of a job's `volumes:` in workflow.yaml (jupyterflow-compatible). */
export interface IVolumeEntry {
  id: string;
  name: string;
  path: string;
}

export const WORKFLOW_FILE = 'workflow.yaml';

/** Turn a dataset name into a volume name that is safe as a directory and a k8s name. */
export function volumeName(datasetName: string): string {
  const slug = datasetName
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 50)
    .replace(/-+$/g, '');
  return slug || 'data';
}

/** The volume entry for a lease, mounted under `mountBase` (the user's home by default). */
export function volumeEntry(
  leaseId: string,
  datasetName: string,
  mountBase = '/home/jovyan'
): IVolumeEntry {
  const name = volumeName(datasetName);
  const base = mountBase.replace(/\/+$/, '') || '';
  return { id: leaseId, name, path: `${base}/${name}` };
}

/** A new workflow.yaml with one job that lists the leased directory. */
export function workflowTemplate(entry: IVolumeEntry): string {
  const doc = parseDocument(
    '# dshare workflow: run it from a notebook with %dshare_run workflow.yaml\n' +
      '# Jobs are numbered from 1; add edges under dags, e.g. "1 >> 2".\n' +
      'jobs: []\n' +
      'dags: []\n'
  );
  const job = doc.createNode({
    command: `ls -la ${entry.path}`,
    volumes: [entry]
  });
  const jobs = doc.get('jobs') as YAMLSeq;
  // "jobs: []" parses as a flow list; block style is what people read and edit.
  jobs.flow = false;
  jobs.add(job);
  return doc.toString();
}

export class WorkflowEditError extends Error {}

/**
 * Add `entry` to the volumes of the last job of a workflow.yaml, keeping the
 * user's comments and layout. A job written as a plain command string becomes
 * a mapping. Adding a lease that is already listed changes nothing.
 */
export function addVolume(text: string, entry: IVolumeEntry): string {
  if (!text.trim()) {
    return workflowTemplate(entry);
  }
  const doc = parseDocument(text);
  if (doc.errors.length > 0) {
    const err = doc.errors[0];
    const line = err.linePos?.[0]?.line;
    throw new WorkflowEditError(
      `workflow.yaml is not valid YAML${line ? ` at line ${line}` : ''}: ` +
        `${err.message.split('\n')[0]}. Fix it, then add the dataset again.`
    );
  }
  if (!isMap(doc.contents)) {
    throw new WorkflowEditError(
      'workflow.yaml must be a mapping with a "jobs:" list. Fix it, then add the dataset again.'
    );
  }
  const root = doc.contents as YAMLMap;
  let jobs = root.get('jobs', true);
  if (
    jobs === undefined ||
    jobs === null ||
    (isScalar(jobs) && jobs.value === null)
  ) {
    root.set('jobs', doc.createNode([]));
    jobs = root.get('jobs', true);
  }
  if (!isSeq(jobs)) {
    throw new WorkflowEditError(
      '"jobs:" in workflow.yaml must be a list. Fix it, then add the dataset again.'
    );
  }
  const seq = jobs as YAMLSeq;
  if (seq.items.length === 0) {
    seq.flow = false;
    seq.add(
      doc.createNode({ command: `ls -la ${entry.path}`, volumes: [entry] })
    );
    return doc.toString();
  }
  const lastIndex = seq.items.length - 1;
  let job = seq.items[lastIndex];
  if (isScalar(job)) {
    job = doc.createNode({ command: String(job.value) });
    seq.items[lastIndex] = job;
  }
  if (!isMap(job)) {
    throw new WorkflowEditError(
      `Job ${lastIndex + 1} in workflow.yaml must be a command string or a mapping. ` +
        'Fix it, then add the dataset again.'
    );
  }
  const jobMap = job as YAMLMap;
  let volumes = jobMap.get('volumes', true);
  if (volumes === undefined || (isScalar(volumes) && volumes.value === null)) {
    jobMap.set('volumes', doc.createNode([]));
    volumes = jobMap.get('volumes', true);
  }
  if (!isSeq(volumes)) {
    throw new WorkflowEditError(
      `"volumes:" of job ${lastIndex + 1} in workflow.yaml must be a list. ` +
        'Fix it, then add the dataset again.'
    );
  }
  const vols = volumes as YAMLSeq;
  const already = vols.items.some(
    v => isMap(v) && String(v.get('id')) === entry.id
  );
  if (!already) {
    vols.add(doc.createNode(entry));
  }
  return doc.toString();
}
