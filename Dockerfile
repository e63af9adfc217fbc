# The Kiln service image: `kiln` on Node 20, as the unprivileged `node` user.
#
#   docker build -t kiln .
#   docker run --rm -v "$PWD/examples:/ex:ro" kiln validate -f /ex/fan-out/acb.yaml
#
# Build arguments:
#   NODE_IMAGE   the Node 20 image both stages start from (default node:20-bookworm-slim;
#                scripts/services.sh builds a local stand-in under that name where nothing can
#                be pulled)
#   VERSION, REVISION   recorded in the OCI labels, e.g.
#                --build-arg VERSION="$(node -p 'require("./package.json").version')"
#                --build-arg REVISION="$(git rev-parse HEAD)"
ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: all dependencies, compile TypeScript to dist/, then drop the devDependencies ----
FROM ${NODE_IMAGE} AS build
WORKDIR /app
# The lock file alone decides node_modules: this layer stays cached until it changes.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig*.json ./
COPY scripts/generate-schema-validator.js ./scripts/
COPY src ./src
COPY schemas ./schemas
COPY bench ./bench
# The web console (Vite builds it into dist/web; it imports the API's types from src/).
COPY web ./web
RUN npm run build
RUN npm prune --omit=dev

# ---- runtime: production node_modules, dist/ (with the console in dist/web) and package.json only ----
FROM ${NODE_IMAGE}
ARG NODE_IMAGE
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="kiln" \
      org.opencontainers.image.description="Self-hosted build service that runs ACR Tasks (acb.yaml) files on a Docker Engine" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="${NODE_IMAGE}"
ENV NODE_ENV=production
WORKDIR /app
# Owned by root and read-only to the `node` user that runs them. dist/ holds the compiled
# package.json that dist/src imports, and the task schema's precompiled validator.
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
USER node
ENTRYPOINT ["node", "/app/dist/src/bin/kiln.js"]
CMD ["--help"]
