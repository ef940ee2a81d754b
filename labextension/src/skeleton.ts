import { ISkeletonEntry } from './types';

/** A node of the directory skeleton: structure and sizes, never content. */
export interface ITreeNode {
  name: string;
  path: string;
  size: number;
  isDir: boolean;
  children: ITreeNode[];
}

/**
 * Build a tree from the ledger's flat skeleton. Paths ending in "/" are
 * directories; parents that are only implied by a deeper path are created.
 * Directory sizes add up their files. Children are sorted directories first.
 */
export function buildTree(entries: ISkeletonEntry[]): ITreeNode {
  const root: ITreeNode = {
    name: '',
    path: '',
    size: 0,
    isDir: true,
    children: []
  };
  const dirs = new Map<string, ITreeNode>([['', root]]);
  const ensureDir = (parts: string[]): ITreeNode => {
    let node = root;
    for (let i = 0; i < parts.length; i++) {
      const path = parts.slice(0, i + 1).join('/');
      let next = dirs.get(path);
      if (!next) {
        next = { name: parts[i], path, size: 0, isDir: true, children: [] };
        node.children.push(next);
        dirs.set(path, next);
      }
      node = next;
    }
    return node;
  };
  for (const entry of entries) {
    const isDir = entry.path.endsWith('/');
    const parts = entry.path.split('/').filter(p => p && p !== '.');
    if (parts.length === 0) {
      continue;
    }
    if (isDir) {
      ensureDir(parts);
      continue;
    }
    const parent = ensureDir(parts.slice(0, -1));
    parent.children.push({
      name: parts[parts.length - 1],
      path: parts.join('/'),
      size: Math.max(0, entry.size || 0),
      isDir: false,
      children: []
    });
  }
  const finish = (node: ITreeNode): number => {
    if (!node.isDir) {
      return node.size;
    }
    node.children.sort((a, b) =>
      a.isDir === b.isDir ? a.name.localeCompare(b.name) : a.isDir ? -1 : 1
    );
    node.size = node.children.reduce((sum, c) => sum + finish(c), 0);
    return node.size;
  };
  finish(root);
  return root;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}
