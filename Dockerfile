# syntax=docker/dockerfile:1
#
# One image, two programs (CONTRIBUTING.md, "The image"): ENTRYPOINT ["node"], and the argument picks the program:
#   docker run IMAGE                          -> the token sidecar (dist/sidecar/main.js, the default CMD)
#   docker run IMAGE dist/webhook/main.js     -> the mutating webhook (what the Helm chart runs)
#   docker run IMAGE dist/sidecar/main.js --dev   -> the sidecar with its built-in dev issuer
#
# Base image: Node 24 LTS on Debian bookworm-slim, pinned by digest so a rebuild uses exactly the bytes that
# were reviewed (a tag moves). Refresh: `docker buildx imagetools inspect node:24-bookworm-slim` (or
# `crane digest node:24-bookworm-slim`) and replace both the tag and the digest below in one commit.
# Machines without a registry (this project's CI) build against a local base image instead:
#   podman build --build-arg NODE_IMAGE=localhost/mi-anywhere-node24:local ...   (test/image/, scripts/provision.d/41-podman.sh)
ARG NODE_IMAGE=node:24.20.0-bookworm-slim@sha256:ba849c60be29959425b8734d57b8b4b7d56f98edd9504c9af091d5281095a71e

# ---- build: all dependencies, type-check and bundle each program into dist/ (scripts/build.ts) -------------
# On the machine's own platform even when the image is for another (the release builds linux/arm64 on an amd64
# runner): bundles are JavaScript, the same for every architecture, so only the stages below run emulated.
FROM --platform=$BUILDPLATFORM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: no dependency needs an install script, and none may run one in our build.
# Optional dependencies are installed here (only here): esbuild's compiler for this platform is one of them. The
# other optional ones, the per-platform Node packages for development (package.json), never leave this stage.
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json LICENSE ./
COPY scripts/build.ts ./scripts/build.ts
COPY common ./common
COPY sidecar ./sidecar
COPY webhook ./webhook
RUN npm run build

# ---- compile cache: compiled code of every bundle file, made once here instead of in every container -------
# Node's compile cache (NODE_COMPILE_CACHE) saves the start-up compilation of each file; warmed here, it is
# read-only at run time (Node then skips writing it, silently). Node keys the cache by version, architecture and
# uid, so it is warmed as the user the programs run as, at the paths they run from (docs/performance.md).
FROM ${NODE_IMAGE} AS compile-cache
WORKDIR /app
COPY --from=build /app/dist ./dist
USER 65532:65532
RUN NODE_COMPILE_CACHE=/tmp/node-compile-cache node dist/warm-compile-cache.js && chmod -R a+rX,go-w /tmp/node-compile-cache

# ---- runtime ------------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="mi-anywhere" \
      org.opencontainers.image.description="Azure managed identity outside Azure: token sidecar (IMDS, App Service, MSI_ENDPOINT, Arc) and Kubernetes mutating webhook" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="https://github.com/mi-anywhere/mi-anywhere" \
      org.opencontainers.image.base.name="docker.io/library/node:24-bookworm-slim"
ENV NODE_ENV=production
# Node flags of every program in the image, also when a pod spec replaces the command (the injected sidecar runs
# plain `node`): no inspector on SIGUSR1 (it would listen on 127.0.0.1:9229 inside the pod); an old-space bound
# that keeps both programs' peak RSS under their default 256Mi memory limit, so V8 collects before the kernel
# kills (docs/performance.md, "Chart values").
ENV NODE_OPTIONS="--disable-sigusr1 --max-old-space-size=128"
ENV NODE_COMPILE_CACHE=/app/.node-compile-cache
WORKDIR /app
# Owned by root and not writable by the runtime user: the programs never write below /app, so the image runs
# unchanged with a read-only root filesystem (Kubernetes readOnlyRootFilesystem, `docker run --read-only`).
# dist/ is self-contained (scripts/build.ts): the two bundles with their lazily loaded chunks, the project's licence
# and those of the packages inside the bundles; no node_modules and no package manager state reach this stage.
COPY --from=build /app/dist ./dist
COPY --from=compile-cache /tmp/node-compile-cache ./.node-compile-cache
# Numeric, not a name: kubelet can only enforce runAsNonRoot when the image's user is a number, and 65532 is
# the conventional "nonroot" id of distroless images (the webhook injects the sidecar with the same id).
USER 65532:65532
# Exec form: node is PID 1's only process, so SIGTERM from the kubelet or `docker stop` reaches it directly
# and both programs shut down gracefully.
ENTRYPOINT ["node"]
CMD ["dist/sidecar/main.js"]
