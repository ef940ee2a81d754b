import { parse } from 'yaml';

import {
  addVolume,
  volumeEntry,
  volumeName,
  workflowTemplate
} from '../workflow';

const entry = volumeEntry('lease-9', 'UiS Word Counts!', '/home/jovyan');

describe('workflow.yaml editing', () => {
  it('derives a safe volume name and a path under the mount base', () => {
    expect(entry).toEqual({
      id: 'lease-9',
      name: 'uis-word-counts',
      path: '/home/jovyan/uis-word-counts'
    });
    expect(volumeName('<img src=x>')).toBe('img-src-x');
    expect(volumeName('***')).toBe('data');
    expect(volumeEntry('l', 'a', '/home/me/').path).toBe('/home/me/a');
  });

  it('creates a workflow from the template, in block style', () => {
    expect(workflowTemplate(entry)).toBe(
      '# dshare workflow: run it from a notebook with %dshare_run workflow.yaml\n' +
        '# Jobs are numbered from 1; add edges under dags, e.g. "1 >> 2".\n' +
        'jobs:\n' +
        '  - command: ls -la /home/jovyan/uis-word-counts\n' +
        '    volumes:\n' +
        '      - id: lease-9\n' +
        '        name: uis-word-counts\n' +
        '        path: /home/jovyan/uis-word-counts\n' +
        'dags: []\n'
    );
    expect(parse(addVolume('jobs: []\n', entry))).toEqual({
      jobs: [
        { command: 'ls -la /home/jovyan/uis-word-counts', volumes: [entry] }
      ]
    });
    expect(addVolume('jobs: []\n', entry)).toContain('jobs:\n  - command:');
    expect(parse(workflowTemplate(entry))).toEqual({
      jobs: [
        { command: 'ls -la /home/jovyan/uis-word-counts', volumes: [entry] }
      ],
      dags: []
    });
  });

  it('adds the volume to the last job, turning a command string into a mapping, keeping comments', () => {
    const text =
      "# my flow\njobs:\n  - command: 'pwd'\n  - 'python count.py'\ndags:\n  - 1 >> 2\n";
    const out = addVolume(text, entry);
    expect(out.startsWith('# my flow\n')).toBe(true);
    expect(parse(out)).toEqual({
      jobs: [
        { command: 'pwd' },
        { command: 'python count.py', volumes: [entry] }
      ],
      dags: ['1 >> 2']
    });
  });

  it('does not add the same lease twice', () => {
    const once = addVolume('jobs:\n  - command: ls\n', entry);
    expect(addVolume(once, entry)).toBe(once);
  });

  it('fills an empty file or an empty jobs list', () => {
    expect(parse(addVolume('', entry)).jobs[0].volumes).toEqual([entry]);
    expect(parse(addVolume('jobs: []\n', entry)).jobs[0].volumes).toEqual([
      entry
    ]);
  });

  it('refuses invalid YAML with the line, changing nothing', () => {
    expect(() => addVolume('jobs:\n  - command: [unclosed\n', entry)).toThrow(
      /^workflow\.yaml is not valid YAML at line \d+: .*Fix it, then add the dataset again\.$/
    );
  });

  it('refuses shapes it cannot extend, naming what is wrong', () => {
    expect(() => addVolume('- a\n- b\n', entry)).toThrow(
      'workflow.yaml must be a mapping with a "jobs:" list. Fix it, then add the dataset again.'
    );
    expect(() => addVolume('jobs: 3\n', entry)).toThrow(
      '"jobs:" in workflow.yaml must be a list. Fix it, then add the dataset again.'
    );
    expect(() =>
      addVolume('jobs:\n  - command: ls\n    volumes: x\n', entry)
    ).toThrow(
      '"volumes:" of job 1 in workflow.yaml must be a list. Fix it, then add the dataset again.'
    );
  });
});
