const { compilePlan } = require('./dist/src/plan/compile');
const { loadTask } = require('./dist/src/task/load');
const { makeRunContext } = require('./dist/src/domain/run-context');
const lines = ['version: v1.1.0', 'stepTimeout: 300', 'env: ["CI=true"]', 'steps:'];
for (let i = 0; i < 1000; i++) {
  lines.push(`  - id: step-${i}`);
  lines.push(`    cmd: busybox sh -c "echo step ${i} && test -d /workspace"`);
  lines.push(`    env: ["STEP=${i}"]`, '    retries: 1', `    timeout: ${60 + i}`);
}
const text = lines.join('\n') + '\n';
const run = makeRunContext({ id: 'b', registry: 'r.io', startedAt: new Date() });
const { performance } = require('perf_hooks');
(async () => {
  const task = (await loadTask({ file: 'x', content: text, run })).task;
  for (let i = 0; i < 20; i++) compilePlan(task);
  let s = performance.now(); for (let i = 0; i < 20; i++) compilePlan(task); console.log('compile cmd-only', ((performance.now()-s)/20).toFixed(1));
  const clone = JSON.parse(JSON.stringify(task));
  for (let i = 0; i < 20; i++) compilePlan(clone);
  s = performance.now(); for (let i = 0; i < 20; i++) compilePlan(clone); console.log('compile json-clone', ((performance.now()-s)/20).toFixed(1));
})();
