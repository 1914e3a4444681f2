# syntax=docker/dockerfile:1
# The Ibex controller image. Build from the repository root:
#   docker build -f deploy/controller.Dockerfile -t ibex-controller .
# (deploy/compose.yaml does this.) Runs `node apps/controller/dist/main.js` as the unprivileged
# `node` user. The controller applies pending migrations itself on start when
# IBEX_MIGRATE_ON_START is true (the default): that is why prisma/ and libs/migrate are in it.

ARG NODE_IMAGE=node:24-bookworm
ARG NODE_RUNTIME_IMAGE=node:24-bookworm-slim

# Every package.json and the lockfile, at their paths. The install steps below then stay cached
# until dependencies change, and a new workspace needs no edit here.
# `npm install` (which keeps to the lockfile), not `npm ci`, as in scripts/lib/prepare.mjs: the
# lockfile cannot list buf's darwin/win32 packages, and `npm ci` refuses it for that.
FROM ${NODE_IMAGE} AS manifests
WORKDIR /src
COPY . .
RUN mkdir /out \
 && find . -name node_modules -prune -o \( -name package.json -o -name package-lock.json \) -print \
    | xargs cp --parents -t /out

# Compile: all dependencies, generated code (proto, Prisma client), every TypeScript project.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
ENV npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
COPY --from=manifests /out/ ./
RUN npm install
COPY . .
RUN node scripts/gen.mjs \
 && npx tsc -b tsconfig.build.json \
 && node scripts/build-ui.mjs --force

# Production dependencies only. A fresh install rather than `npm prune --omit=dev`, which drops
# the workspace links (node_modules/@ibex/*) the controller imports. --omit=optional also leaves
# out the Prisma CLI and TypeScript, which npm would keep as optional peers (250 MB).
FROM ${NODE_IMAGE} AS prod-deps
WORKDIR /app
ENV npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
COPY --from=manifests /out/ ./
RUN npm install --omit=dev --omit=optional

FROM ${NODE_RUNTIME_IMAGE} AS runtime
ENV NODE_ENV=production NO_COLOR=1
WORKDIR /app
# Only what the controller runs: production node_modules, the compiled controller and libraries,
# and prisma/ (schema + migrations) for the migrations run on start. Owned by root, run as node.
COPY --from=prod-deps /app/package.json ./package.json
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /app/libs ./libs
COPY --from=build /app/apps/controller/package.json ./apps/controller/package.json
COPY --from=build /app/apps/controller/dist ./apps/controller/dist
# The dashboard's static files, served at /ui (its npm packages are build-time only).
COPY --from=build /app/apps/dashboard/dist ./apps/dashboard/dist
COPY --from=build /app/prisma ./prisma
USER node
# 8080: REST (/api/v1, /healthz, /readyz, /metrics) and the dashboard (/ui); 9090: gRPC for agents.
EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.IBEX_HTTP_PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "apps/controller/dist/main.js"]
