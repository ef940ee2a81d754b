import React from 'react';

import { buildTree, formatBytes, ITreeNode } from '../skeleton';
import { ISkeletonEntry } from '../types';

function Node(props: { node: ITreeNode; depth: number }): JSX.Element {
  const { node, depth } = props;
  const [open, setOpen] = React.useState(depth < 1);
  const label = `${node.name}${node.isDir ? '/' : ''}`;
  return (
    <li
      role="treeitem"
      aria-expanded={node.isDir ? open : undefined}
      aria-level={depth + 1}
      data-testid="dshare-skeleton-node"
      data-path={node.path}
    >
      {node.isDir ? (
        <button
          className="jp-dshare-tree-toggle"
          aria-label={`${open ? 'Collapse' : 'Expand'} ${node.name}`}
          onClick={() => setOpen(!open)}
        >
          {open ? '▾' : '▸'} {label}
        </button>
      ) : (
        <span className="jp-dshare-tree-file">{label}</span>
      )}
      <span className="jp-dshare-tree-size"> {formatBytes(node.size)}</span>
      {node.isDir && open && node.children.length > 0 && (
        <ul role="group">
          {node.children.map(c => (
            <Node key={c.path} node={c} depth={depth + 1} />
          ))}
        </ul>
      )}
    </li>
  );
}

/** The dataset's directory skeleton: names and sizes, no content. */
export function SkeletonTree(props: {
  entries: ISkeletonEntry[];
}): JSX.Element {
  const root = React.useMemo(() => buildTree(props.entries), [props.entries]);
  if (root.children.length === 0) {
    return (
      <div data-testid="dshare-skeleton-empty">
        No directory skeleton published.
      </div>
    );
  }
  return (
    <ul
      className="jp-dshare-tree"
      role="tree"
      aria-label="Directory skeleton"
      data-testid="dshare-skeleton"
    >
      {root.children.map(c => (
        <Node key={c.path} node={c} depth={0} />
      ))}
    </ul>
  );
}
