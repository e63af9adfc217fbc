// Lint: typescript-eslint's recommended rules, and the layer boundaries of DESIGN.md ("Layout"):
// each folder of src/ imports only the folders above it in that table.
const js = require('@eslint/js');
const tseslint = require('typescript-eslint');
const importPlugin = require('eslint-plugin-import');

/** folder -> the folders of ours it may import (besides itself). */
const allowed = {
  errors: [],
  config: [],
  log: [],
  domain: ['errors'],
  task: ['domain', 'errors'],
  plan: ['domain', 'errors'],
  backend: ['domain', 'errors', 'log'],
  source: ['domain', 'errors', 'log'],
  registry: ['domain', 'errors', 'log'],
  runtime: ['domain', 'backend', 'errors', 'log'],
  runs: ['task', 'plan', 'runtime', 'backend', 'source', 'registry', 'domain', 'errors', 'config', 'log'],
  queue: ['runs', 'domain', 'errors', 'config', 'log'],
  triggers: ['runs', 'queue', 'registry', 'domain', 'errors', 'config', 'log'],
  http: ['runs', 'triggers', 'domain', 'errors', 'config', 'log'],
};
const folders = [...Object.keys(allowed), 'cli', 'bin'];
const zones = Object.entries(allowed).flatMap(([target, ok]) =>
  folders
    .filter((f) => f !== target && !ok.includes(f))
    .map((from) => ({
      target: `./src/${target}`,
      from: `./src/${from}`,
      message: `src/${target} may not import src/${from} (see DESIGN.md, Layout)`,
    })),
);

module.exports = tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'test/summary-reporter.js', 'src/task/generated/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    plugins: { import: importPlugin },
    settings: { 'import/resolver': { typescript: { project: './tsconfig.json' } } },
    rules: {
      'import/no-restricted-paths': ['error', { zones }],
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-syntax': ['error', { selector: 'ExportDefaultDeclaration', message: 'Use named exports.' }],
    },
  },
  {
    // The web console (web/): browser code, JSX for Preact, resolved with its own tsconfig.
    files: ['web/**/*.ts', 'web/**/*.tsx', 'web/**/*.mts'],
    plugins: { import: importPlugin },
    settings: { 'import/resolver': { typescript: { project: './web/tsconfig.json' } } },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-syntax': ['error', { selector: 'ExportDefaultDeclaration', message: 'Use named exports.' }],
    },
  },
  {
    // Vite finds its config by its default export.
    files: ['web/vite.config.mts'],
    rules: { 'no-restricted-syntax': 'off' },
  },
  {
    files: ['*.js', 'test/**/*.js'],
    languageOptions: { sourceType: 'commonjs', globals: { require: 'readonly', module: 'writable', process: 'readonly' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
