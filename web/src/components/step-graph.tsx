import { Graph, layout, type EdgeLabel, type GraphLabel, type NodeLabel } from '@dagrejs/dagre';
import { useMemo } from 'preact/hooks';
import { useMediaQuery } from '../hooks';
import type { StepResult } from '../types';

/**
 * A run's steps as a DAG: dagre places the nodes and routes the edges (each step's `dependsOn`,
 * the plan's resolved `when`), the component only draws SVG. A node shows its status as a word
 * as well as a colour. `data-step` / `data-edge="from->to"` name what is drawn, for tests and tools.
 */

const NODE_HEIGHT = 46;
const CHAR_WIDTH = 7.4;
const MAX_LABEL = 28;
/** The same width as app.css's narrow layout. */
const NARROW = '(max-width: 40rem)';

interface Placed {
  width: number;
  height: number;
  nodes: { id: string; x: number; y: number; width: number }[];
  edges: { from: string; to: string; path: string }[];
}

/** What the layout depends on: the ids and edges, not the statuses (they change every second). */
function shapeOf(steps: readonly StepResult[]): string {
  return JSON.stringify(steps.map((s) => [s.id, s.kind, s.dependsOn ?? []]));
}

function clip(text: string): string {
  return text.length > MAX_LABEL ? `${text.slice(0, MAX_LABEL - 1)}…` : text;
}

function place(steps: readonly StepResult[], rankdir: 'LR' | 'TB'): Placed {
  const g = new Graph<GraphLabel, NodeLabel, EdgeLabel>();
  g.setGraph({ rankdir, nodesep: 18, ranksep: rankdir === 'LR' ? 44 : 30, marginx: 6, marginy: 6 });
  g.setDefaultEdgeLabel(() => ({}));
  const ids = new Set(steps.map((s) => s.id));
  for (const step of steps) {
    // Wide enough for the id or for the "Status · kind" line, whichever is longer.
    const chars = Math.max(clip(step.id).length, `Succeeded · ${step.kind ?? 'step'}`.length);
    g.setNode(step.id, { width: Math.ceil(chars * CHAR_WIDTH) + 24, height: NODE_HEIGHT });
  }
  for (const step of steps) for (const dep of step.dependsOn ?? []) if (ids.has(dep)) g.setEdge(dep, step.id);
  layout(g);

  const nodes = g.nodes().map((id) => {
    const n = g.node(id);
    return { id, x: (n.x ?? 0) - n.width / 2, y: (n.y ?? 0) - n.height / 2, width: n.width };
  });
  const edges = g.edges().map((e) => {
    const points = g.edge(e).points ?? [];
    const path = points.map((p, i) => `${i === 0 ? 'M' : 'L'}${p.x.toFixed(1)},${p.y.toFixed(1)}`).join(' ');
    return { from: e.v, to: e.w, path };
  });
  const graph = g.graph();
  return { width: Math.ceil(graph.width ?? 0), height: Math.ceil(graph.height ?? 0), nodes, edges };
}

export function StepGraph({ steps }: { steps: readonly StepResult[] }) {
  const shape = shapeOf(steps);
  // Left to right; top to bottom on a narrow screen, where width is what is short.
  const rankdir = useMediaQuery(NARROW) ? 'TB' : 'LR';
  // Laid out again only when the shape changes, not on each status change.
  const placed = useMemo(() => place(steps, rankdir), [shape, rankdir]);
  const byId = new Map(steps.map((s) => [s.id, s]));
  const summary = steps
    .map((s) => `${s.id}: ${s.status}${s.dependsOn && s.dependsOn.length > 0 ? `, after ${s.dependsOn.join(' and ')}` : ''}`)
    .join('; ');

  return (
    <figure class="graph">
      <div class="graph-scroll" role="region" aria-label="Step graph" tabIndex={0}>
        <svg
          width={placed.width}
          height={placed.height}
          viewBox={`0 0 ${placed.width} ${placed.height}`}
          role="img"
          aria-label={`Step graph. ${summary}.`}
          data-testid="step-graph"
        >
          <defs>
            <marker id="graph-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
              <path d="M0,0 L10,5 L0,10 z" class="arrow-head" />
            </marker>
          </defs>
          {placed.edges.map((e) => (
            <path key={`${e.from}->${e.to}`} class="edge" d={e.path} data-edge={`${e.from}->${e.to}`} marker-end="url(#graph-arrow)" />
          ))}
          {placed.nodes.map((n) => {
            const step = byId.get(n.id);
            const status = step?.status ?? 'Queued';
            return (
              <g key={n.id} class={`node st-${status}`} data-step={n.id} data-status={status} transform={`translate(${n.x.toFixed(1)},${n.y.toFixed(1)})`}>
                <title>{`${n.id}: ${status}${step?.kind ? ` (${step.kind})` : ''}`}</title>
                <rect width={n.width} height={NODE_HEIGHT} rx="6" ry="6" />
                <text x="12" y="19" class="node-id">
                  {clip(n.id)}
                </text>
                <text x="12" y="36" class="node-meta">
                  {status}
                  {step?.kind ? ` · ${step.kind}` : ''}
                </text>
              </g>
            );
          })}
        </svg>
      </div>
    </figure>
  );
}
