# syntax=docker/dockerfile:1
# trustgate webhook image: `hack/build-image.sh` (buildah), or
# `docker build -t ghcr.io/trustgate/trustgate:$(node -p "require('./package.json').version") .`
# The chart's default image is this one (repository ghcr.io/trustgate/trustgate, tag = appVersion).
#
# Both stages run Node 24 LTS, the major CI tests with. The bases are pinned by digest (the
# multi-platform index as published); refresh both together, e.g. `crane digest IMAGE:TAG`.
# No registry is reachable where they were set, so check them before the first release.
# A machine without a registry builds with local stand-ins under the same names and
# --build-arg NAME=<name without the digest> (hack/build-image.sh does this).
ARG BUILD_BASE=node:24-bookworm-slim@sha256:0e0ff40c39bc087845bfb27465a0df4ea419520094bc35842ff83dd8cbe6f9b6
ARG RUNTIME_BASE=gcr.io/distroless/nodejs24-debian12:nonroot@sha256:14d42e2511532589a7c7e01a753667a74fcc96266e137e8125006b87b0c32d0a

# ---- build: compile the TypeScript, then keep only the production dependencies
FROM ${BUILD_BASE} AS build
ENV NPM_CONFIG_UPDATE_NOTIFIER=false
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: the package's prepare script compiles, and the sources are not here yet.
# --omit=peer: the Helm test packages' peers (the AWS CDK, ~185 MB) play no part in a build.
RUN npm ci --ignore-scripts --omit=peer --no-audit --no-fund
COPY tsconfig.json ./
COPY webhook ./webhook
# Type declarations and source maps of the dependencies are a third of their size and unused
# at run time.
RUN npm run build \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 && find node_modules -type f \( -name '*.map' -o -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' \) -delete

# ---- runtime: distroless Node (no shell, no npm, no package manager), the compiled webhook,
# its production dependencies and the CRDs (the policy schema is read from them).
# The chart needs nothing else: its probes are HTTPS GETs, not commands.
FROM ${RUNTIME_BASE} AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
LABEL org.opencontainers.image.title="trustgate" \
      org.opencontainers.image.description="Kubernetes admission webhook that admits only images signed in Notary v1 / TUF trust data and pins them to the signed digest" \
      org.opencontainers.image.source="https://github.com/trustgate/trustgate" \
      org.opencontainers.image.url="https://github.com/trustgate/trustgate" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="gcr.io/distroless/nodejs24-debian12:nonroot"
ENV NODE_ENV=production
WORKDIR /app
# Files stay owned by root and read-only to the process; the chart also sets
# readOnlyRootFilesystem and mounts the only writable paths (/tmp, the state directory).
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/webhook ./dist/webhook
COPY crds ./crds
USER 65532:65532
EXPOSE 8443
# One V8 background thread instead of 4: under the chart's 1-CPU limit more only compete with
# the thread that answers admissions (test/support/runtime.ts says why; the bench uses the same).
ENTRYPOINT ["/nodejs/bin/node", "--v8-pool-size=1", "dist/webhook/src/cli/main.js"]
CMD ["serve", "--kubernetes"]
