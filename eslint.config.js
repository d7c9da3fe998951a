// @ts-check
// ESLint 9 flat config: `npm run lint` (see docs/decisions/0025-code-checks.md).
// A small strict set: eslint's and typescript-eslint's recommended rules, plus a few type-aware rules for
// promises, with type information from tsconfig.eslint.json (tsconfig.json plus scripts/ and tools/).
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import globals from 'globals';
import tseslint from 'typescript-eslint';

const TS_FILES = ['{src,test,bench,scripts,tools}/**/*.ts', '*.config.ts'];
const JS_FILES = ['bin/**/*.js', '{scripts,tools}/**/*.{js,mjs,cjs}', '*.{js,mjs,cjs}', '.*.{js,mjs,cjs}'];

export default defineConfig(
  { ignores: ['node_modules/', 'coverage/', '.stratum/', '.stratum-*/', 'scratch/', 'test-output/'] },
  { linterOptions: { reportUnusedDisableDirectives: 'error' } },
  {
    files: [...TS_FILES, ...JS_FILES],
    extends: [js.configs.recommended, tseslint.configs.recommended],
    languageOptions: {
      ecmaVersion: 'latest',
      sourceType: 'module',
      globals: { ...globals.node },
    },
    rules: {
      eqeqeq: ['error', 'always', { null: 'ignore' }],
      '@typescript-eslint/no-unused-vars': [
        'error',
        {
          args: 'after-used',
          argsIgnorePattern: '^_',
          varsIgnorePattern: '^_',
          caughtErrorsIgnorePattern: '^_',
          destructuredArrayIgnorePattern: '^_',
          ignoreRestSiblings: true,
        },
      ],
      '@typescript-eslint/consistent-type-imports': [
        'error',
        { prefer: 'type-imports', fixStyle: 'inline-type-imports' },
      ],
    },
  },
  {
    // Type-aware rules, TypeScript files only.
    files: TS_FILES,
    languageOptions: {
      parserOptions: {
        project: './tsconfig.eslint.json',
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
    },
  },
  {
    // Tests read JSON answers of every shape; `any` there is the parsed body, not a hole in the product's types.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs' },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
