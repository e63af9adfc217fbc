import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { RunStatus, StepStatus } from '../types';

/** Small pieces every page uses. */

/**
 * A status as a word on a coloured badge: the word carries the meaning, the colour only helps
 * (WCAG 1.4.1). The class `st-<Status>` picks the colour in app.css.
 */
export function StatusBadge({ status }: { status: RunStatus | StepStatus | string }) {
  return <span class={`badge st-${status}`}>{status}</span>;
}

/** An error from the API or the network, announced to screen readers. */
export function ErrorNote({ error, what }: { error: Error | undefined; what: string }) {
  if (!error) return null;
  return (
    <p class="error" role="alert">
      Could not {what}: {error.message}
    </p>
  );
}

/** A table that scrolls sideways inside its own box on a narrow screen, not the page. */
export function TableBox({ label, children }: { label: string; children: ComponentChildren }) {
  return (
    <div class="table-box" role="region" aria-label={label} tabIndex={0}>
      {children}
    </div>
  );
}

/** `label: value` pairs of a document. */
export function Facts({ items }: { items: [string, ComponentChildren][] }) {
  return (
    <dl class="facts">
      {items.map(([term, value]) => (
        <div key={term}>
          <dt>{term}</dt>
          <dd>{value === '' || value === null || value === undefined ? '—' : value}</dd>
        </div>
      ))}
    </dl>
  );
}

/** A filter that picks one of `choices`, or any (the empty value). */
export function ChoiceFilter({ id, label, value, choices, onChange }: { id: string; label: string; value: string; choices: readonly string[]; onChange: (value: string) => void }) {
  return (
    <div class="field">
      <label for={id}>{label}</label>
      <select id={id} value={value} onChange={(e) => onChange(e.currentTarget.value)}>
        <option value="">Any</option>
        {choices.map((c) => (
          <option key={c} value={c}>
            {c}
          </option>
        ))}
      </select>
    </div>
  );
}

/**
 * A task-name filter: applied when the box is left or Enter is pressed. What is being typed is
 * kept apart from the applied filter, so that a live reload does not put the old one back over it.
 */
export function TaskFilter({ id, value, onChange }: { id: string; value: string; onChange: (value: string) => void }) {
  const [text, setText] = useState(value);
  useEffect(() => setText(value), [value]);
  return (
    <div class="field">
      <label for={id}>Task</label>
      <input id={id} type="search" value={text} placeholder="task name" onInput={(e) => setText(e.currentTarget.value)} onChange={(e) => onChange(e.currentTarget.value)} />
    </div>
  );
}

/** A table's header row of column names. */
export function TableHead({ columns }: { columns: readonly string[] }) {
  return (
    <thead>
      <tr>
        {columns.map((c) => (
          <th key={c} scope="col">
            {c}
          </th>
        ))}
      </tr>
    </thead>
  );
}
