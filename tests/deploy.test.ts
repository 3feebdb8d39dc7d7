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

/** The scalar after `key:` in a blueprint (first occurrence), without quotes or a trailing comment. */
function yamlValue(key: string, yaml = renderYaml): string {
  const match = new RegExp(`^\\s*(?:- )?${key}:[ \\t]*(.+?)[ \\t]*(?:#.*)?$`, 'm').exec(yaml);
  if (!match?.[1]) throw new Error(`the blueprint has no ${key}`);
  return match[1].replace(/^(["'])(.*)\1$/, '$2');
}

/**
 * envVars as `- key: K` followed by `value: V`, or by `sync: false` (a secret Render asks
 * for at deploy time, listed here with the value undefined), or by `fromDatabase:` with its
 * `name:` and `property:` (listed as `fromDatabase:<name>.<property>`). Comments are skipped.
 */
function renderEnvVars(yaml = renderYaml): Record<string, string | undefined> {
  const lines = yaml.split('\n');
  const start = lines.findIndex((line) => /^\s*envVars:\s*$/.test(line));
  const vars: Record<string, string | undefined> = {};
  let key: string | undefined;
  for (const line of lines.slice(start + 1)) {
    if (/^\s*(#.*)?$/.test(line)) continue;
    const item = /^\s*-\s*key:\s*(\S+)\s*$/.exec(line);
    const field = /^\s+(value|sync|name|property):\s*(.+?)\s*$/.exec(line);
    if (item) {
      key = item[1]!;
      vars[key] = undefined;
    } else if (/^\s+fromDatabase:\s*$/.test(line) && key) {
      vars[key] = 'fromDatabase:';
    } else if (field && key) {
      if (field[1] === 'value') vars[key] = field[2]!.replace(/^(["'])(.*)\1$/, '$2');
      if (field[1] === 'name' || field[1] === 'property') vars[key] += `${field[1] === 'property' ? '.' : ''}${field[2]}`;
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

  test('when Render installs NODE_VERSION, then package.json\'s engines allows it and CI runs the tests on that major version', () => {
    const major = env.NODE_VERSION;
    const engines = (JSON.parse(read('package.json')) as { engines: { node: string } }).engines.node;
    // engines is a list of caret ranges ("^20.19.0 || ^22.12.0"): each allows one major version.
    const majors = engines.split('||').map((range) => /^\s*\^(\d+)\.\d+\.\d+\s*$/.exec(range)?.[1] ?? `not a caret range: ${range}`);
    const ciNode = /^NODE22_VERSION=(\d+)\.\d+\.\d+$/m.exec(read('.ci/run'))?.[1];

    expect(major).toMatch(/^\d+$/);
    expect(majors).toContain(major);
    expect(ciNode).toBe(major);
  });

  test('when deployed, then the directory URL is the same as the config default', () => {
    expect(env.HOSPITAL_API_BASE_URL).toBe(loadConfig({}).HOSPITAL_API_BASE_URL);
  });
});

describe('render-ha.yaml (several instances on Render Postgres)', () => {
  const yaml = read('render-ha.yaml');
  const env = renderEnvVars(yaml);

  test('when Render builds, migrates and starts it, then it only runs npm scripts that exist, and migrations run before deploy', () => {
    const commands = ['buildCommand', 'preDeployCommand', 'startCommand'].map((key) => yamlValue(key, yaml));
    expect(commands.flatMap(commandProblems)).toEqual([]);
    expect(yamlValue('preDeployCommand', yaml)).toBe('npm run db:migrate');
  });

  test('when deployed, then it runs at least two instances with no disk, on the blueprint\'s own database', () => {
    expect(Number(yamlValue('numInstances', yaml))).toBeGreaterThanOrEqual(2);
    expect(yaml).not.toMatch(/^\s*disk:/m);
    const database = /^databases:\s*\n\s*- name:\s*(\S+)/m.exec(yaml)?.[1];
    expect(database).toBeDefined();
    expect(env.DATABASE_URL).toBe(`fromDatabase:${database}.connectionString`);
  });

  test('when Render stops an instance, then it waits longer than the row in flight may take (SHUTDOWN_GRACE_MS)', () => {
    const grace = loadConfig({ ...definedValues(env), API_KEY: 'x'.repeat(32) }).SHUTDOWN_GRACE_MS;
    expect(Number(yamlValue('maxShutdownDelaySeconds', yaml)) * 1000).toBeGreaterThan(grace);
  });

  test('when envVars are set, then each is a setting the service reads (or Render reads), valid with the database URL Render gives', () => {
    const unknown = Object.keys(env).filter((key) => !configKeys.includes(key) && !PLATFORM_VARS.has(key));
    expect(unknown).toEqual([]);
    expect(env.API_KEY).toBeUndefined();
    expect(Object.keys(env)).toContain('API_KEY');
    const config = loadConfig({ ...definedValues(env), DATABASE_URL: 'postgresql://user:secret@dpg-x-a/hospital_bulk', API_KEY: 'x'.repeat(32) });
    expect(config.AUTO_RESUME).toBe(true);
    expect(env.NODE_VERSION).toBe(renderEnvVars().NODE_VERSION);
  });
});

/** The envVars with a literal value (secrets and database links left out). */
function definedValues(env: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined && !entry[1].startsWith('fromDatabase:')));
}

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
