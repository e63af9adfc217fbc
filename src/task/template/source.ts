import { TemplateError, type Position } from '../../errors';

/**
 * The template text, able to turn an offset into a 1-based line and column (columns count UTF-16
 * units, as editors and the `yaml` package do). Nodes carry offsets only; the line table is built
 * on the first error or warning, so a clean render never pays for it.
 */
export class SourceText {
  private lineStarts: number[] | null = null;

  constructor(readonly text: string) {}

  position(offset: number): Position {
    const starts = this.lines();
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid] <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, col: offset - starts[lo] + 1 };
  }

  error(offset: number, reason: string, cause?: unknown): TemplateError {
    return new TemplateError(reason, this.position(offset), cause === undefined ? undefined : { cause });
  }

  private lines(): number[] {
    if (this.lineStarts) return this.lineStarts;
    const starts = [0];
    const text = this.text;
    for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) starts.push(i + 1);
    this.lineStarts = starts;
    return starts;
  }
}
