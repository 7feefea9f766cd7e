# syntax=docker/dockerfile:1.7
# One image for every role: `sentinel operator | engine | ingress | migrate | ...`.
#
#   docker build -t sentinel:dev .
#   docker run --rm sentinel:dev --help
#
# Stage 1 compiles the TypeScript and keeps production dependencies only; stage 2 is distroless
# (no shell, no package manager), runs as an unprivileged user, and works with a read-only root
# filesystem (nothing is written outside /tmp).

ARG NODE_VERSION=20

FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /src
ENV npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# Compile, keep the SQL migrations beside the compiled migrator, drop dev dependencies, and write
# `sentinel`: a CommonJS launcher (the runtime image has no shell) that loads the ESM CLI.
RUN npm run build \
 && cp -r src/adapters/postgres/migrations dist/adapters/postgres/migrations \
 && npm prune --omit=dev \
 && printf '#!/nodejs/bin/node\nimport("/app/dist/cli/main.js");\n' > sentinel \
 && chmod 0555 sentinel

FROM gcr.io/distroless/nodejs${NODE_VERSION}-debian12:nonroot AS runtime
LABEL org.opencontainers.image.title="sentinel" \
      org.opencontainers.image.description="Sentinel flash-sale ticketing: operator, engine and ingress in one image" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/sentinel-dev/sentinel"
WORKDIR /app
# 64 MB young-generation semi-spaces for busy servers (why: SERVER_NODE_FLAGS in src/jobs/local-stack.ts).
ENV NODE_ENV=production \
    NODE_OPTIONS=--max-semi-space-size=64
COPY --from=build --chown=0:0 /src/package.json ./package.json
COPY --from=build --chown=0:0 /src/node_modules ./node_modules
COPY --from=build --chown=0:0 /src/dist ./dist
COPY --chown=0:0 docs/openapi.json ./docs/openapi.json
COPY --from=build --chown=0:0 /src/sentinel /usr/local/bin/sentinel
# 65532 is distroless's `nonroot`; numeric so that Kubernetes can verify runAsNonRoot.
USER 65532:65532
EXPOSE 8080 9464
ENTRYPOINT ["/usr/local/bin/sentinel"]
CMD ["--help"]
