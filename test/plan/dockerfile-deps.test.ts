import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { formatImageRef } from '../../src/domain/image-ref';
import { KilnError } from '../../src/errors';
import { scanDockerfile, type DockerfileDeps, type DockerfileScanOptions } from '../../src/plan/dockerfile-deps';

const SHA_A = 'sha256:7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa';

function fixture(name: string): string {
  return readFileSync(join(__dirname, '..', 'fixtures', 'dockerfiles', name), 'utf8');
}

/** The dependencies in canonical form, the shape most cases assert. */
function summary(deps: DockerfileDeps): { runtime?: string; buildtime: string[] } {
  return {
    ...(deps.runtime !== undefined ? { runtime: formatImageRef(deps.runtime) } : {}),
    buildtime: deps.buildtime.map(formatImageRef),
  };
}

function scanError(text: string, options?: DockerfileScanOptions): KilnError {
  try {
    scanDockerfile(text, options);
  } catch (error) {
    if (error instanceof KilnError) return error;
    throw error;
  }
  throw new Error('expected scanDockerfile to throw');
}

const lines = (...l: string[]): string => l.join('\n');

describe('scanDockerfile: realistic Dockerfiles', () => {
  // [what it verifies, fixture, options, runtime, buildtime]
  const cases: Array<[string, string, DockerfileScanOptions, string | undefined, string[]]> = [
    [
      'a Go build: ARG defaults in FROM, --platform=$BUILDPLATFORM, a test stage built on the build stage',
      'go-multistage.Dockerfile',
      {},
      'docker.io/library/alpine:3.20',
      ['docker.io/library/golang:1.22-alpine'],
    ],
    [
      'the Go build with its versions overridden by build args',
      'go-multistage.Dockerfile',
      { buildArgs: { GO_VERSION: '1.23', ALPINE_VERSION: '3.21', UNRELATED: 'x' } },
      'docker.io/library/alpine:3.21',
      ['docker.io/library/golang:1.23-alpine'],
    ],
    [
      'the Go build stopped at its test stage: the runtime is the build stage base, followed through',
      'go-multistage.Dockerfile',
      { target: 'test' },
      'docker.io/library/golang:1.22-alpine',
      ['docker.io/library/golang:1.22-alpine'],
    ],
    [
      'the Go build stopped at its first stage: nothing else is scanned',
      'go-multistage.Dockerfile',
      { target: 'build' },
      'docker.io/library/golang:1.22-alpine',
      [],
    ],
    [
      'a Node build whose four stages all come from one base: it is listed once',
      'node-multistage.Dockerfile',
      {},
      'docker.io/library/node:20-bookworm-slim',
      ['docker.io/library/node:20-bookworm-slim'],
    ],
    [
      'a scratch final stage has no runtime dependency; stages used only by COPY --from still count',
      'scratch-final.Dockerfile',
      {},
      undefined,
      ['docker.io/library/rust:1.79-alpine', 'gcr.io/distroless/static-debian12:nonroot'],
    ],
    [
      'a Windows Dockerfile with `# escape=`` and a backtick line continuation before AS',
      'windows-escape.Dockerfile',
      {},
      'mcr.microsoft.com/dotnet/aspnet:8.0-nanoserver-ltsc2022',
      ['mcr.microsoft.com/dotnet/sdk:8.0-windowsservercore-ltsc2022'],
    ],
    [
      'the Windows Dockerfile for another Windows version',
      'windows-escape.Dockerfile',
      { buildArgs: { WINDOWS_VERSION: 'ltsc2019' } },
      'mcr.microsoft.com/dotnet/aspnet:8.0-nanoserver-ltsc2019',
      ['mcr.microsoft.com/dotnet/sdk:8.0-windowsservercore-ltsc2019'],
    ],
    [
      'digests, with and without a tag, and a registry with a port',
      'pinned-digests.Dockerfile',
      {},
      'myreg.azurecr.io/base/runtime@sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210',
      [
        `myreg.azurecr.io/base/builder:2024.06@${SHA_A}`,
        'localhost:5000/tools/lint@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef',
      ],
    ],
  ];

  it.each(cases)('%s', (_what, file, options, runtime, buildtime) => {
    expect(summary(scanDockerfile(fixture(file), options))).toStrictEqual({
      ...(runtime !== undefined ? { runtime } : {}),
      buildtime,
    });
  });

  it('reports every stage of the Go build', () => {
    const deps = scanDockerfile(fixture('go-multistage.Dockerfile'), { buildArgs: { BUILDPLATFORM: 'linux/amd64' } });
    expect(deps.stages).toStrictEqual([
      {
        index: 0,
        name: 'build',
        from: 'golang:1.22-alpine',
        image: { registry: 'docker.io', repository: 'library/golang', tag: '1.22-alpine' },
        platform: 'linux/amd64',
        line: 6,
      },
      { index: 1, name: 'test', from: 'build', parentStage: 0, line: 14 },
      {
        index: 2,
        from: 'alpine:3.20',
        image: { registry: 'docker.io', repository: 'library/alpine', tag: '3.20' },
        line: 17,
      },
    ]);
  });

  it('reports the stages of a scratch build and of a continued FROM', () => {
    expect(scanDockerfile(fixture('scratch-final.Dockerfile')).stages.map((s) => [s.index, s.from, s.line])).toEqual([
      [0, 'rust:1.79-alpine', 1],
      [1, 'gcr.io/distroless/static-debian12:nonroot', 6],
      [2, 'scratch', 8],
    ]);
    const windows = scanDockerfile(fixture('windows-escape.Dockerfile')).stages[1];
    expect(windows).toMatchObject({ name: 'final', line: 10 });
  });

  it('returns plain JSON', () => {
    const deps = scanDockerfile(fixture('node-multistage.Dockerfile'));
    expect(JSON.parse(JSON.stringify(deps))).toStrictEqual(deps);
  });
});

describe('scanDockerfile: FROM and stages', () => {
  // [what it verifies, Dockerfile, options, runtime, buildtime]
  const cases: Array<[string, string, DockerfileScanOptions, string | undefined, string[]]> = [
    ['a single stage', 'FROM node:20\nCMD ["node"]', {}, 'docker.io/library/node:20', []],
    ['a FROM without a tag keeps no tag', 'FROM ubuntu', {}, 'docker.io/library/ubuntu', []],
    [
      'a lowercase from and as',
      'from golang:1.22 as build\nfrom alpine',
      {},
      'docker.io/library/alpine',
      ['docker.io/library/golang:1.22'],
    ],
    [
      'extra spaces and tabs between the words',
      'FROM    golang:1.22     AS     build  \nFROM\talpine:3\tAS\tfinal',
      {},
      'docker.io/library/alpine:3',
      ['docker.io/library/golang:1.22'],
    ],
    [
      'stage names are case-insensitive, in FROM and in --target',
      'FROM golang:1.22 AS Build\nFROM BUILD AS Test\nFROM alpine',
      { target: 'TEST' },
      'docker.io/library/golang:1.22',
      ['docker.io/library/golang:1.22'],
    ],
    [
      'a chain of three stages is followed to its external base',
      'FROM debian:12 AS a\nFROM a AS b\nFROM b AS c\nFROM c',
      {},
      'docker.io/library/debian:12',
      ['docker.io/library/debian:12'],
    ],
    [
      'the final base is build-time too when another stage also uses it',
      'FROM alpine:3 AS tools\nFROM golang:1.22 AS build\nFROM alpine:3',
      {},
      'docker.io/library/alpine:3',
      ['docker.io/library/alpine:3', 'docker.io/library/golang:1.22'],
    ],
    [
      'the final base is not build-time when only the final stage uses it',
      'FROM golang:1.22 AS build\nFROM gcr.io/distroless/base',
      {},
      'gcr.io/distroless/base',
      ['docker.io/library/golang:1.22'],
    ],
    [
      'duplicates are dropped and file order is kept; equal refs written differently count once',
      'FROM b:1 AS x\nFROM a:1 AS y\nFROM docker.io/library/b:1 AS z\nFROM index.docker.io/library/a:1 AS w\nFROM c',
      {},
      'docker.io/library/c',
      ['docker.io/library/b:1', 'docker.io/library/a:1'],
    ],
    [
      'node and node:latest are different dependencies (tagging is the caller\'s decision)',
      'FROM node AS a\nFROM node:latest AS b\nFROM scratch',
      {},
      undefined,
      ['docker.io/library/node', 'docker.io/library/node:latest'],
    ],
    [
      '--target in the middle: later stages, even broken ones, are ignored',
      'FROM golang:1.22 AS build\nFROM alpine:3 AS release\nFROM Not/Valid:ref\nFROM $UNDEFINED',
      { target: 'release' },
      'docker.io/library/alpine:3',
      ['docker.io/library/golang:1.22'],
    ],
    [
      'a target that is the first stage of a chain stops the chain',
      'FROM debian:12 AS base\nFROM base AS app\nFROM base',
      { target: 'base' },
      'docker.io/library/debian:12',
      [],
    ],
    [
      'a scratch stage in the middle is no dependency, and a stage on it resolves to nothing',
      'FROM scratch AS empty\nFROM empty AS still-empty\nFROM busybox',
      {},
      'docker.io/library/busybox',
      [],
    ],
    [
      'a final stage built on a scratch stage has no runtime',
      'FROM golang:1.22 AS build\nFROM scratch AS base\nFROM base',
      {},
      undefined,
      ['docker.io/library/golang:1.22'],
    ],
    [
      'a FROM may only name an earlier stage; a later one is an image of that name',
      'FROM app AS base\nFROM alpine AS app\nFROM base',
      {},
      'docker.io/library/app',
      ['docker.io/library/app', 'docker.io/library/alpine'],
    ],
    [
      'a stage cannot be built on itself: the name is an image',
      'FROM build AS build\nFROM build',
      {},
      'docker.io/library/build',
      ['docker.io/library/build'],
    ],
    [
      'comments, empty lines and a line continuation inside FROM',
      lines(
        '# comment FROM ignored:1',
        '',
        'FROM \\',
        '  # a comment inside the instruction',
        '  golang:1.22 \\',
        '',
        '  AS build',
        'RUN echo \\',
        '  FROM not-a-from:1',
        '   # indented comment',
        'FROM alpine',
      ),
      {},
      'docker.io/library/alpine',
      ['docker.io/library/golang:1.22'],
    ],
    [
      'a FROM line inside a heredoc is text, not an instruction',
      lines('FROM alpine:3 AS a', 'RUN <<EOF', 'FROM not-a-from:1', 'echo hi', 'EOF', 'FROM busybox'),
      {},
      'docker.io/library/busybox',
      ['docker.io/library/alpine:3'],
    ],
    [
      'a continuation in the middle of the image name',
      'FROM golang:1.\\\n22 AS build\nFROM alpine',
      {},
      'docker.io/library/alpine',
      ['docker.io/library/golang:1.22'],
    ],
    [
      'CRLF line endings',
      'ARG V=3\r\nFROM golang:1.22 AS build\r\nRUN go build\r\nFROM alpine:$V\r\n',
      {},
      'docker.io/library/alpine:3',
      ['docker.io/library/golang:1.22'],
    ],
    [
      'quotes and escapes in the image word are removed as the shell would',
      'ARG T=1.22\nFROM "golang":"$T" AS a\nFROM gol\\ang:\'1\' AS b\nFROM alpine',
      {},
      'docker.io/library/alpine',
      ['docker.io/library/golang:1.22', 'docker.io/library/golang:1'],
    ],
    [
      'a parser directive and a syntax line do not count as instructions',
      '# syntax=docker/dockerfile:1\n# escape=\\\nARG X=1\nFROM busybox:$X',
      {},
      'docker.io/library/busybox:1',
      [],
    ],
  ];

  it.each(cases)('%s', (_what, text, options, runtime, buildtime) => {
    expect(summary(scanDockerfile(text, options))).toStrictEqual({
      ...(runtime !== undefined ? { runtime } : {}),
      buildtime,
    });
  });

  it('records the stage fields for stage references, scratch and external images', () => {
    const deps = scanDockerfile('FROM scratch AS empty\nFROM Empty AS Copy\nFROM node:20@' + SHA_A);
    expect(deps.stages).toStrictEqual([
      { index: 0, name: 'empty', from: 'scratch', line: 1 },
      { index: 1, name: 'copy', from: 'Empty', parentStage: 0, line: 2 },
      {
        index: 2,
        from: `node:20@${SHA_A}`,
        image: { registry: 'docker.io', repository: 'library/node', tag: '20', digest: SHA_A },
        line: 3,
      },
    ]);
  });
});

describe('scanDockerfile: ARG in FROM', () => {
  // [what it verifies, Dockerfile, options, expected FROM text of the last stage]
  const cases: Array<[string, string, DockerfileScanOptions, string]> = [
    ['a default', 'ARG V=20\nFROM node:$V', {}, 'node:20'],
    ['a build arg overrides the default', 'ARG V=20\nFROM node:${V}', { buildArgs: { V: '22' } }, 'node:22'],
    [
      'a build arg gives a value to an ARG without default',
      'ARG V\nFROM node:${V:-18}',
      { buildArgs: { V: '22' } },
      'node:22',
    ],
    ['an ARG without default or build arg is unset', 'ARG V\nFROM node:${V-unset}', {}, 'node:unset'],
    ['a build arg no global ARG declares is not used', 'FROM node:${V:-20}', { buildArgs: { V: '22' } }, 'node:20'],
    [
      'an ARG declared after the first FROM is not usable in FROM',
      'FROM alpine AS a\nARG V=22\nFROM node:${V:-20}',
      { buildArgs: { V: '23' } },
      'node:20',
    ],
    ['a later global ARG replaces an earlier default', 'ARG V=1\nARG V=2\nFROM node:$V', {}, 'node:2'],
    ['a global ARG without default keeps the earlier value', 'ARG V=1\nARG V\nFROM node:$V', {}, 'node:1'],
    [
      'a default may use earlier global ARGs',
      'ARG MAJOR=20\nARG V=${MAJOR}-alpine\nFROM node:$V',
      {},
      'node:20-alpine',
    ],
    [
      'a default using an overridden ARG sees the override',
      'ARG MAJOR=20\nARG V=${MAJOR}-alpine\nFROM node:$V',
      { buildArgs: { MAJOR: '22' } },
      'node:22-alpine',
    ],
    [
      'several ARGs on one line, quoted',
      'ARG REG="myreg.azurecr.io" NS=team V=\'1.0\'\nFROM $REG/$NS/app:$V',
      {},
      'myreg.azurecr.io/team/app:1.0',
    ],
    ['an empty default is set but empty', 'ARG E=\nFROM app:${E-unset}x', {}, 'app:x'],
    ['${VAR:-word} on an empty value', 'ARG E=\nFROM app:${E:-word}', {}, 'app:word'],
    ['${VAR:-word} on an unset name', 'FROM app:${NOPE:-word}', {}, 'app:word'],
    ['${VAR-word} on a set value', 'ARG S=set\nFROM app:${S-word}', {}, 'app:set'],
    ['${VAR:+alt} on a set value', 'ARG S=set\nFROM app:${S:+alt}', {}, 'app:alt'],
    ['${VAR:+alt} on an empty value', 'ARG E=\nFROM app:x${E:+alt}', {}, 'app:x'],
    ['${VAR+alt} on an empty value', 'ARG E=\nFROM app:${E+alt}', {}, 'app:alt'],
    ['${VAR+alt} on an unset name', 'FROM app:x${NOPE+alt}', {}, 'app:x'],
    ['${VAR:?msg} on a set value', 'ARG S=set\nFROM app:${S:?needed}', {}, 'app:set'],
    ['a nested default', 'ARG S=set\nFROM app:${NOPE:-${S}}', {}, 'app:set'],
    ['a default with a colon and a slash', 'FROM ${IMG:-myreg.io:5000/app:1}', {}, 'myreg.io:5000/app:1'],
    ['several variables in one word', 'ARG A=team B=app C=1\nFROM $A/${B}:v$C.$C', {}, 'team/app:v1.1'],
    ['an undefined variable expands to nothing', 'FROM app$NOPE:1', {}, 'app:1'],
    ['a positional parameter expands to nothing', 'FROM app$1:1', {}, 'app:1'],
    ['double quotes expand', 'ARG V=1\nFROM "app:$V"', {}, 'app:1'],
  ];

  it.each(cases)('%s', (_what, text, options, from) => {
    const deps = scanDockerfile(text, options);
    expect(deps.stages[deps.stages.length - 1].from).toBe(from);
  });

  it('keeps an escaped $, a $ that starts no name, and build arg values literal', () => {
    expect(scanError('ARG V=1\nFROM app:x\\$V').message).toBe(
      'line 2: FROM: invalid image reference "app:x$V": invalid tag "x$V": a tag is up to 128 of [A-Za-z0-9_.-] and cannot start with "." or "-"',
    );
    expect(scanError("ARG V=1\nFROM 'app:$V'").message).toContain('invalid image reference "app:$V"');
    expect(scanError('FROM app:1$').message).toContain('invalid image reference "app:1$"');
    expect(scanError('ARG A=x\nARG V\nFROM node:$V', { buildArgs: { V: '${A}' } }).message).toContain(
      'invalid image reference "node:${A}"',
    );
  });

  it('expands --platform with global ARGs and the platform ARGs passed as build args', () => {
    const text = lines(
      'ARG PLATFORM=linux/arm64',
      'FROM --platform=$BUILDPLATFORM golang:1.22 AS build',
      'FROM --platform=${PLATFORM} alpine AS arm',
      'FROM --platform=$TARGETPLATFORM alpine',
    );
    expect(scanDockerfile(text).stages.map((s) => s.platform)).toEqual([undefined, 'linux/arm64', undefined]);
    const withPlatforms = scanDockerfile(text, {
      buildArgs: { BUILDPLATFORM: 'linux/amd64', TARGETPLATFORM: 'linux/s390x', PLATFORM: 'windows/amd64' },
    });
    expect(withPlatforms.stages.map((s) => s.platform)).toEqual(['linux/amd64', 'windows/amd64', 'linux/s390x']);
  });

  it('lets a global ARG TARGETPLATFORM without default take the build arg', () => {
    const deps = scanDockerfile('ARG TARGETPLATFORM\nFROM --platform=$TARGETPLATFORM alpine', {
      buildArgs: { TARGETPLATFORM: 'linux/arm/v7' },
    });
    expect(deps.stages[0].platform).toBe('linux/arm/v7');
  });

  it('uses a build arg that is not a platform ARG only when a global ARG declares it', () => {
    const text = 'FROM --platform=${P:-linux/amd64} app:${V:-1}';
    expect(scanDockerfile(text, { buildArgs: { P: 'linux/arm64', V: '2' } }).stages[0]).toMatchObject({
      from: 'app:1',
      platform: 'linux/amd64',
    });
  });

  it('follows a stage name that comes from an ARG', () => {
    const deps = scanDockerfile('ARG BASE=builder\nFROM golang:1.22 AS builder\nFROM $BASE', {});
    expect(deps.stages[1]).toMatchObject({ from: 'builder', parentStage: 0 });
    expect(summary(deps)).toStrictEqual({
      runtime: 'docker.io/library/golang:1.22',
      buildtime: ['docker.io/library/golang:1.22'],
    });
  });

  it('chooses the base image through a build arg', () => {
    const text = lines(
      'ARG VARIANT=build',
      'FROM golang:1.22 AS build',
      'FROM gcr.io/distroless/static AS distroless',
      'FROM ${VARIANT}',
    );
    expect(summary(scanDockerfile(text, { buildArgs: { VARIANT: 'distroless' } }))).toStrictEqual({
      runtime: 'gcr.io/distroless/static',
      buildtime: ['docker.io/library/golang:1.22', 'gcr.io/distroless/static'],
    });
    const external = scanDockerfile(text, { buildArgs: { VARIANT: 'redis:7' } });
    expect(summary(external).runtime).toBe('docker.io/library/redis:7');
  });
});

describe('scanDockerfile: errors name the line', () => {
  // [what it verifies, Dockerfile, options, exact message]
  const cases: Array<[string, string, DockerfileScanOptions, string]> = [
    ['an empty Dockerfile', '', {}, 'the Dockerfile has no FROM instruction'],
    ['only comments and ARGs', '# nothing\nARG V=1\n', {}, 'the Dockerfile has no FROM instruction'],
    [
      'an uppercase repository',
      'FROM golang:1.22 AS build\nRUN make\nFROM Node:20',
      {},
      'line 3: FROM: invalid image reference "Node:20": repository name must be lowercase',
    ],
    [
      'an invalid reference after expansion',
      'ARG TAG="bad tag"\nFROM node:$TAG',
      {},
      'line 2: FROM: invalid image reference "node:bad tag": reference must not contain whitespace',
    ],
    [
      'an invalid reference from a build arg',
      'ARG TAG=20\n\nFROM node:${TAG}',
      { buildArgs: { TAG: '-20' } },
      'line 3: FROM: invalid image reference "node:-20": invalid tag "-20": a tag is up to 128 of [A-Za-z0-9_.-] and cannot start with "." or "-"',
    ],
    [
      'an invalid digest',
      'FROM node@sha256:abc',
      {},
      'line 1: FROM: invalid image reference "node@sha256:abc": invalid digest "sha256:abc": expected ALGORITHM:HEX (e.g. sha256:<64 hex>)',
    ],
    [
      'an image that expands to nothing',
      'FROM alpine AS a\n\nFROM ${BASE}',
      {},
      'line 3: FROM: base image "${BASE}" is empty after expanding build arguments',
    ],
    [
      'an ARG without default, not given',
      'ARG BASE\nFROM $BASE',
      {},
      'line 2: FROM: base image "$BASE" is empty after expanding build arguments',
    ],
    ['a FROM without image', 'FROM alpine AS a\nFROM', {}, 'line 2: FROM: missing the base image'],
    ['a FROM with only flags', 'FROM --platform=linux/amd64', {}, 'line 1: FROM: missing the base image'],
    [
      'a FROM with two words',
      'FROM alpine build',
      {},
      'line 1: FROM: expected "FROM [--platform=PLATFORM] IMAGE [AS NAME]"',
    ],
    [
      'a FROM with too many words',
      'FROM alpine AS build extra',
      {},
      'line 1: FROM: expected "FROM [--platform=PLATFORM] IMAGE [AS NAME]"',
    ],
    ['AS misspelt', 'FROM alpine AT build', {}, 'line 1: FROM: expected "AS" before the stage name, found "AT"'],
    [
      'an invalid stage name',
      'FROM alpine AS 1st',
      {},
      'line 1: FROM: invalid stage name "1st": it must start with a letter and contain only letters, digits, "-", "_" and "."',
    ],
    [
      'a duplicate stage name, case-insensitively',
      'FROM alpine AS build\nFROM debian AS other\nFROM golang AS BUILD',
      {},
      'line 3: FROM: duplicate stage name "build" (first used on line 1)',
    ],
    ['an unknown FROM flag', 'FROM --pull alpine', {}, 'line 1: FROM: unknown flag: --pull'],
    [
      'a --platform without value',
      'FROM --platform alpine',
      {},
      'line 1: FROM: --platform needs a value (--platform=OS/ARCH)',
    ],
    [
      'an unknown target',
      'FROM golang AS build\nFROM alpine AS final',
      { target: 'test' },
      'target stage "test" could not be found (stage names: "build", "final")',
    ],
    [
      'a target in a Dockerfile without names',
      'FROM alpine',
      { target: 'final' },
      'target stage "final" could not be found (stage names: none)',
    ],
    [
      'an instruction before the first FROM',
      'ARG V=1\nRUN echo hi\nFROM alpine',
      {},
      'line 2: RUN: only ARG may come before the first FROM',
    ],
    [
      'a required variable that is unset',
      'FROM app:${TAG:?set-TAG-to-the-release}',
      {},
      'line 1: FROM: cannot expand "app:${TAG:?set-TAG-to-the-release}": TAG: set-TAG-to-the-release',
    ],
    [
      'a required variable that is empty',
      'ARG TAG=\nFROM app:${TAG:?}',
      {},
      'line 2: FROM: cannot expand "app:${TAG:?}": TAG: is unset or empty',
    ],
    [
      'an unsupported modifier',
      'ARG TAG=v1\nFROM app:${TAG#v}',
      {},
      'line 2: FROM: cannot expand "app:${TAG#v}": unsupported modifier "#" in "${TAG...}"',
    ],
    ['an unterminated ${', 'FROM app:${TAG', {}, 'line 1: FROM: cannot expand "app:${TAG": missing "}" after "${TAG"'],
    ['an unterminated default', 'FROM app:${TAG:-1', {}, 'line 1: FROM: cannot expand "app:${TAG:-1": missing "}"'],
    [
      'an empty ${}',
      'FROM app:${}',
      {},
      'line 1: FROM: cannot expand "app:${}": bad substitution: missing variable name after "${"',
    ],
    [
      'an unterminated double quote',
      'FROM "app:1',
      {},
      'line 1: FROM: cannot expand ""app:1": missing closing double quote',
    ],
    [
      'an unterminated single quote',
      "FROM 'app:1",
      {},
      'line 1: FROM: cannot expand "\'app:1": missing closing single quote',
    ],
    [
      'an ARG default that cannot be expanded',
      'ARG A=1\nARG B=${A\nFROM app',
      {},
      'line 2: ARG: cannot expand "${A": missing "}" after "${A"',
    ],
    [
      'an invalid --platform expression',
      'FROM --platform=${P:?} alpine',
      {},
      'line 1: FROM: cannot expand "${P:?}": P: is unset or empty',
    ],
    [
      'the line of a FROM that starts after continued lines',
      'FROM golang:1.22 \\\n  AS build\nRUN go build \\\n  ./...\nFROM Alpine',
      {},
      'line 5: FROM: invalid image reference "Alpine": repository name must be lowercase',
    ],
    [
      'the line of a FROM that is itself continued',
      'FROM alpine AS a\nFROM \\\n  Bad:1 \\\n  AS b',
      {},
      'line 2: FROM: invalid image reference "Bad:1": repository name must be lowercase',
    ],
  ];

  it.each(cases)('%s', (_what, text, options, message) => {
    const error = scanError(text, options);
    expect(error.code).toBe('invalid_input');
    expect(error.message).toBe(message);
  });

  it('keeps the reference error as the cause', () => {
    const error = scanError('FROM Node:20');
    expect(error.cause).toMatchObject({ code: 'invalid_reference', reference: 'Node:20' });
  });
});
