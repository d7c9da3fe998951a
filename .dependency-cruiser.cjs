// The import boundaries of stratum: `npm run deps:check` (see docs/decisions/0025-code-checks.md).
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'platform-names-no-context',
      comment:
        'The platform is reusable: it never imports a context, the composition root, the CLI, the HTTP edge or the configuration.',
      severity: 'error',
      from: { path: '^src/platform/' },
      to: { path: '^src/(contexts|app|cli|http|config)/' },
    },
    {
      name: 'context-not-to-other-context',
      comment: 'A context reaches another only through the ports the root hands it, never by importing it.',
      severity: 'error',
      from: { path: '^src/contexts/([^/]+)/' },
      to: { path: '^src/contexts/', pathNot: '^src/contexts/$1/' },
    },
    {
      name: 'nothing-to-app',
      comment: 'The composition root is called by the process entry and the CLI only.',
      severity: 'error',
      from: { path: '^src/', pathNot: ['^src/app/', '^src/cli/', '^src/main[.]ts$'] },
      to: { path: '^src/app/' },
    },
    {
      name: 'nothing-to-cli',
      comment: 'The CLI is an entry point: only src/main.ts (and bin/) start it.',
      severity: 'error',
      from: { pathNot: ['^src/cli/', '^src/main[.]ts$', '^bin/'] },
      to: { path: '^src/cli/' },
    },
    {
      name: 'src-not-to-tools-bench-test',
      comment: 'The product does not depend on its tooling, benchmarks or tests.',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(tools|bench|test|scripts)/' },
    },
    {
      name: 'no-circular',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'src-not-to-dev-dependencies',
      comment: 'What the service runs is in dependencies; devDependencies are for checks, tests and benchmarks.',
      severity: 'error',
      from: { path: '^src/' },
      to: { dependencyTypes: ['npm-dev'] },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|coverage|[.]stratum)' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default'],
      extensions: ['.ts', '.js', '.json'],
    },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
