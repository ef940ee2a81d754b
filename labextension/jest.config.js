const jestJupyterLab = require('@jupyterlab/testutils/lib/jest-config');

// JupyterLab and its dependencies ship ES modules; jest must transform them.
const esModules = [
  '@codemirror',
  '@jupyter/ydoc',
  '@jupyter/react-components',
  '@jupyter/web-components',
  '@microsoft/fast',
  '@jupyterlab/',
  'exenv-es6',
  'lib0',
  'nanoid',
  'vscode-ws-jsonrpc',
  'y-protocols',
  'y-websocket',
  'yjs'
].join('|');

const baseConfig = jestJupyterLab(__dirname);

module.exports = {
  ...baseConfig,
  automock: false,
  moduleNameMapper: {
    ...baseConfig.moduleNameMapper,
    // jsdom picks yaml's browser ES build; its CommonJS build is the same code.
    '^yaml$': '<rootDir>/node_modules/yaml/dist/index.js'
  },
  collectCoverageFrom: ['src/**/*.{ts,tsx}', '!src/**/*.d.ts'],
  coverageReporters: ['text-summary'],
  testRegex: 'src/__tests__/.*\\.spec\\.tsx?$',
  transformIgnorePatterns: [`/node_modules/(?!${esModules}).+`]
};
