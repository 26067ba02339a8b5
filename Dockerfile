# syntax=docker/dockerfile:1
# trustgate webhook image: `docker build -t ghcr.io/trustgate/trustgate:$(node -p "require('./package.json').version") .`
# The chart's default image is this one (repository ghcr.io/trustgate/trustgate, tag = appVersion).

# ---- build: compile the TypeScript with the dev dependencies
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: the package's prepare script compiles, and the sources are not here yet.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY webhook ./webhook
RUN npm run build

# ---- runtime: production dependencies, the compiled webhook and the CRDs, nothing else
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force
COPY --from=build /src/dist/webhook ./dist/webhook
COPY crds ./crds
# Files stay owned by root and read-only to the process; the chart also sets
# readOnlyRootFilesystem and mounts the only writable paths (/tmp, the state directory).
USER 65532:65532
EXPOSE 8443
ENTRYPOINT ["node", "dist/webhook/src/cli/main.js"]
CMD ["serve", "--kubernetes"]
