// The fault suite's report: emptied before the suite (`clear`), printed as a table after it
// (`print`; the README carries the latest). Each case appends rows with `record` (rig.ts).
const { existsSync, readFileSync, rmSync } = require('node:fs');
const { join } = require('node:path');
const { tmpdir } = require('node:os');

const REPORT = process.env.KILN_FAULT_REPORT ?? join(tmpdir(), 'kiln-fault-report.jsonl');

async function clear() {
  rmSync(REPORT, { force: true });
}

async function print() {
  if (!existsSync(REPORT)) return;
  const rows = readFileSync(REPORT, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const lines = ['', 'Fault suite (RELIABILITY.md section 5):', '', '| case | measure | value | target | met |', '|---|---|---|---|---|'];
  for (const r of rows) lines.push(`| ${r.case} | ${r.measure} | ${r.value} | ${r.target} | ${r.ok ? 'yes' : 'NO'} |`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

module.exports = { clear, print };
