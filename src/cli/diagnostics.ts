import { formatDiagnostic, type Diagnostic } from '../errors';

/** Errors and warnings go to stderr, one `FILE:LINE:COL: ...` line each. */
export function printDiagnostics(diagnostics: readonly Diagnostic[], stderr: NodeJS.WritableStream): void {
  for (const d of diagnostics) stderr.write(formatDiagnostic(d) + '\n');
}
