/**
 * Benchmark: parse + render + validate + plan (the whole `kiln validate` path, in process) for
 * a 1,000-step task and for a 100-step task with heavy templating. Prints a table of timings.
 * Target (issue 2): under 50 ms for the 1,000-step task on a 2-core machine.
 *
 *   npm run build && node dist/bench/task-language.js [--runs N]
 */
import { performance } from 'node:perf_hooks';
import { makeRunContext } from '../src/domain/run-context';
import { prepareTask } from '../src/runs/prepare';

function thousandSteps(): string {
  const lines = ['version: v1.1.0', 'stepTimeout: 300', 'env: ["CI=true"]', 'steps:'];
  for (let i = 0; i < 1000; i++) {
    const kind = i % 10;
    lines.push(`  - id: step-${i}`);
    if (kind === 0) lines.push(`    build: -t $Registry/app-${i}:$ID --build-arg N=${i} -f Dockerfile .`);
    else if (kind === 1) lines.push(`    push: ["$Registry/app-${i - 1}:$ID"]`);
    else lines.push(`    cmd: busybox sh -c "echo step ${i} && test -d /workspace"`);
    lines.push(i % 3 === 0 ? '    when: ["-"]' : `    when: ["step-${Math.max(0, i - 1 - (i % 7))}"]`);
    lines.push(`    env: ["STEP=${i}"]`, '    retries: 1', `    timeout: ${60 + i}`);
  }
  return lines.join('\n') + '\n';
}

function heavyTemplate(): { text: string; values: Record<string, unknown> } {
  const services = Array.from({ length: 100 }, (_, i) => ({ name: `svc-${i}`, port: 8000 + i, replicas: (i % 4) + 1, tags: ['a', 'b', 'c'] }));
  const text = `version: v1.1.0
alias:
  values:
    tool: busybox
env:
  - TEAM={{ .Values.team | default "platform" | upper | quote }}
steps:
{{- range $i, $s := .Values.services }}
  - id: {{ $s.name }}
    when: [{{ if eq (mod $i 10) 0 }}"-"{{ else }}"{{ (index $.Values.services (sub $i 1)).name }}"{{ end }}]
    cmd: $tool sh -c {{ printf "echo %s:%d x%d %s" $s.name $s.port $s.replicas (join "," $s.tags) | quote }}
    env:
      - PORT={{ $s.port }}
      - NAME={{ $s.name | upper | trimPrefix "SVC-" }}
      - HASH={{ $s.name | sha256sum | trunc 12 }}
      - B64={{ $s.name | b64enc }}
{{- if gt $s.replicas 2 }}
    retries: {{ $s.replicas }}
{{- end }}
{{- end }}
`;
  return { text, values: { team: 'kiln', services } };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function measure(name: string, text: string, values: Record<string, unknown>, runs: number): Promise<string> {
  const run = makeRunContext({ id: 'bench1', registry: 'myregistry.azurecr.io', startedAt: new Date() });
  const once = async (): Promise<number> => {
    const start = performance.now();
    const prepared = await prepareTask({ file: 'bench.yaml', content: text, run, values });
    const ms = performance.now() - start;
    if (!prepared.plan) throw new Error(`${name}: ${prepared.diagnostics.map((d) => d.message).join('; ')}`);
    return ms;
  };
  for (let i = 0; i < 5; i++) await once(); // warm-up: JIT and the schema compile
  const times: number[] = [];
  for (let i = 0; i < runs; i++) times.push(await once());
  times.sort((a, b) => a - b);
  const bytes = Buffer.byteLength(text);
  return `| ${name} | ${(bytes / 1024).toFixed(0)} KiB | ${percentile(times, 50).toFixed(1)} | ${percentile(times, 95).toFixed(1)} | ${times[0].toFixed(1)} |`;
}

async function main(): Promise<void> {
  const runsFlag = process.argv.indexOf('--runs');
  const runs = runsFlag > 0 ? Number(process.argv[runsFlag + 1]) : 30;
  const heavy = heavyTemplate();
  const rows = [
    await measure('1,000 steps (build/push/cmd, when graph)', thousandSteps(), {}, runs),
    await measure('100 steps, heavy templating (range, printf, sprig)', heavy.text, heavy.values, runs),
  ];
  console.log(`task language: parse + render + validate + plan, ${runs} runs each (ms)\n`);
  console.log('| task | size | median | p95 | min |');
  console.log('|---|---|---|---|---|');
  for (const row of rows) console.log(row);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
