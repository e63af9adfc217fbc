import type { RunResult } from '../domain/run-result';
import type { RunEvent } from '../runtime';

/**
 * What `kiln run` shows a person: every log line prefixed by its step id, a line when a step
 * starts, retries or ends, then a summary table. With `--output json` all of this goes to stderr
 * and stdout carries only the result document.
 */
export function makeEventPrinter(out: NodeJS.WritableStream, stepIds: readonly string[]): (event: RunEvent) => void {
  const width = Math.max(4, ...stepIds.map((id) => id.length));
  const prefix = (id: string): string => id.padEnd(width) + ' | ';
  return (event) => {
    switch (event.type) {
      case 'run-started':
        out.write(`kiln: run ${event.runId} started\n`);
        break;
      case 'step-started':
        out.write(`${prefix(event.stepId)}--- step ${event.stepId} started${event.attempt > 1 ? ` (attempt ${event.attempt})` : ''}\n`);
        break;
      case 'log':
        out.write(prefix(event.stepId) + event.line + '\n');
        break;
      case 'step-retry':
        out.write(`${prefix(event.stepId)}--- attempt ${event.attempt} failed (${event.reason}); retrying in ${event.delaySeconds} s\n`);
        break;
      case 'step-finished': {
        const s = event.step;
        const code = s.exitCode === null ? '' : `, exit code ${s.exitCode}`;
        const error = s.error ? `: ${s.error}` : '';
        out.write(`${prefix(s.id)}--- step ${s.id} ${s.status}${code}${error}\n`);
        break;
      }
      case 'image-built':
        out.write(`${prefix(event.stepId)}--- built ${event.tags.join(', ') || event.imageId}\n`);
        break;
      case 'image-pushed':
        out.write(`${prefix(event.stepId)}--- pushed ${event.image}@${event.digest}\n`);
        break;
      case 'run-finished':
        break;
      default: {
        const never: never = event;
        throw new Error(`unknown event ${JSON.stringify(never)}`);
      }
    }
  };
}

function seconds(from: string | null, to: string | null): string {
  if (!from || !to) return '-';
  return `${((Date.parse(to) - Date.parse(from)) / 1000).toFixed(1)}s`;
}

export function formatSummary(result: RunResult): string {
  const rows = [['STEP', 'STATUS', 'EXIT', 'DURATION', 'ATTEMPTS']];
  for (const s of result.steps) {
    rows.push([s.id, s.status, s.exitCode === null ? '-' : String(s.exitCode), seconds(s.startedAt, s.finishedAt), String(s.attempts)]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const lines = rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c])).join('  ').trimEnd());
  lines.push('');
  lines.push(`run ${result.runId}: ${result.status} in ${seconds(result.startedAt, result.finishedAt)}${result.error ? ` (${result.error})` : ''}`);
  for (const image of result.outputImages) lines.push(`pushed ${image.registry}/${image.repository}:${image.tag}@${image.digest}`);
  return lines.join('\n') + '\n';
}
