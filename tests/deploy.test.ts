/**
 * The deployment files agree with the code: render.yaml only runs scripts that exist,
 * its health check and settings are ones the service accepts, its database lives on the
 * persistent disk, and every setting is documented in .env.example and README.md.
 * render.yaml is read with a few regexes (no YAML dependency): it is ours and kept flat.
 */
import { existsSync, readFileSync } from 'node:fs';
import { posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import request from 'supertest';
import { configSchema, loadConfig } from '../src/config.js';
import { startStack, type Stack } from './helpers.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const read = (file: string) => readFileSync(`${root}/${file}`, 'utf8');
const renderYaml = read('render.yaml');
const scripts = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts;
const configKeys = Object.keys(configSchema.shape);

/** Variables Render itself reads (here: which Node to install), not the service. */
const PLATFORM_VARS = new Set(['NODE_VERSION']);

/** The scalar after `key:` in render.yaml (first occurrence), without quotes or a trailing comment. */
function yamlValue(key: string): string {
  const match = new RegExp(`^\\s*(?:- )?${key}:[ \\t]*(.+?)[ \\t]*(?:#.*)?$`, 'm').exec(renderYaml);
  if (!match?.[1]) throw new Error(`render.yaml has no ${key}`);
  return match[1].replace(/^(["'])(.*)\1$/, '$2');
}

/**
 * envVars as `- key: K` followed by `value: V`, or by `sync: false` (a secret Render asks
 * for at deploy time, listed here with the value undefined). Comment lines are skipped.
 */
function renderEnvVars(): Record<string, string | undefined> {
  const lines = renderYaml.split('\n');
  const start = lines.findIndex((line) => /^\s*envVars:\s*$/.test(line));
  const vars: Record<string, string | undefined> = {};
  let key: string | undefined;
  for (const line of lines.slice(start + 1)) {
    if (/^\s*(#.*)?$/.test(line)) continue;
    const item = /^\s*-\s*key:\s*(\S+)\s*$/.exec(line);
    const field = /^\s+(value|sync):\s*(.+?)\s*$/.exec(line);
    if (item) {
      key = item[1]!;
      vars[key] = undefined;
    } else if (field && key) {
      if (field[1] === 'value') vars[key] = field[2]!.replace(/^(["'])(.*)\1$/, '$2');
    } else break;
  }
  return vars;
}

/** Every `npm …` invocation in a shell command line; anything else is reported as is. */
function commandProblems(command: string): string[] {
  return command.split(/&&|\|\||;/).flatMap((part) => {
    const [tool, sub, name] = part.trim().split(/\s+/);
    if (tool !== 'npm') return [`"${part.trim()}" is not an npm command`];
    if (sub === 'ci') return [];
    if (sub === 'run' || sub === 'run-script') return name && name in scripts ? [] : [`npm run ${name}: no such script`];
    if (sub === 'start' || sub === 'test') return sub in scripts ? [] : [`npm ${sub}: no "${sub}" script`];
    return [`npm ${sub}: not expected in a deploy command`];
  });
}

describe('render.yaml', () => {
  const env = renderEnvVars();

  test('when Render builds and starts the service, then it only runs npm scripts that exist in package.json', () => {
    const build = yamlValue('buildCommand');
    const start = yamlValue('startCommand');
    expect([...commandProblems(build), ...commandProblems(start)]).toEqual([]);
    expect(build).toMatch(/\bnpm run build\b/);
  });

  test('when NODE_ENV is production at build time, then npm ci still installs the dev dependencies tsc needs', () => {
    expect(env.NODE_ENV).toBe('production');
    expect(yamlValue('buildCommand')).toMatch(/npm ci\b.*--include=dev/);
  });

  test('when npm start runs, then the file it starts is the build output of a source file', () => {
    const target = /^node\s+dist\/(\S+)\.js$/.exec(scripts.start ?? '')?.[1];
    expect(target).toBeDefined();
    expect(existsSync(`${root}/${target}.ts`)).toBe(true);
  });

  describe('against the real app', () => {
    let stack: Stack;
    beforeAll(async () => {
      stack = await startStack();
    });
    afterAll(async () => {
      await stack.close();
    });

    test('when Render probes healthCheckPath, then the app answers 200', async () => {
      const path = yamlValue('healthCheckPath');
      expect(path).toMatch(/^\//);
      await request(stack.app).get(path).expect(200);
    });
  });

  test('when the service writes its database, then DATABASE_PATH is on the persistent disk', () => {
    const mountPath = posix.normalize(yamlValue('mountPath'));
    const databaseDir = posix.dirname(posix.normalize(env.DATABASE_PATH ?? ''));
    expect(posix.isAbsolute(databaseDir)).toBe(true);
    expect(databaseDir === mountPath || databaseDir.startsWith(`${mountPath}/`)).toBe(true);
  });

  test('when envVars are set, then each is a setting the service reads (or one Render reads) and its value is valid', () => {
    expect(Object.keys(env).length).toBeGreaterThan(0);
    const unknown = Object.keys(env).filter((key) => !configKeys.includes(key) && !PLATFORM_VARS.has(key));
    expect(unknown).toEqual([]);
    // API_KEY is the secret Render asks for at deploy time (production refuses to start without it).
    expect(() => loadConfig({ ...env, API_KEY: 'a-secret-filled-in-on-render' })).not.toThrow();
  });

  test('when deployed, then API_KEY is a secret Render asks for, never a value in the repository', () => {
    expect(Object.keys(env)).toContain('API_KEY');
    expect(env.API_KEY).toBeUndefined();
  });

  test('when deployed, then the directory URL is the same as the config default', () => {
    expect(env.HOSPITAL_API_BASE_URL).toBe(loadConfig({}).HOSPITAL_API_BASE_URL);
  });
});

describe('documentation of settings', () => {
  test('when a setting exists in src/config.ts, then .env.example lists it', () => {
    const listed = new Set([...read('.env.example').matchAll(/^([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1]));
    expect(configKeys.filter((key) => !listed.has(key))).toEqual([]);
    expect([...listed].filter((key) => !configKeys.includes(key!))).toEqual([]);
  });

  test('when .env.example is copied as is, then every value is the default the service would use anyway', () => {
    const values = Object.fromEntries(
      [...read('.env.example').matchAll(/^([A-Z][A-Z0-9_]*)=(.*)$/gm)].map((m) => [m[1]!, m[2]!.trim()]),
    );
    expect(loadConfig(values)).toEqual(loadConfig({}));
  });

  test('when a setting exists in src/config.ts, then README.md mentions it', () => {
    expect(existsSync(`${root}/README.md`)).toBe(true);
    const readme = read('README.md');
    expect(configKeys.filter((key) => !new RegExp(`\\b${key}\\b`).test(readme))).toEqual([]);
  });
});
