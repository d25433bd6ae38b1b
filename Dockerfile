# syntax=docker/dockerfile:1
# The operator and load-balancer agent image: `berth operator`, `berth agent`.
# hack/check-image-build.sh performs these steps without a container engine.
ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# tsc emits JavaScript only; the agent installs the Lua and njs files into nginx's prefix
# from dist/nginx, where its --lua-dir and --njs-dir defaults point (next to dist/cli.js).
RUN node_modules/.bin/tsc -p tsconfig.build.json \
 && cp -r src/nginx/lua src/nginx/njs dist/nginx/

FROM ${NODE_IMAGE} AS dependencies
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM ${NODE_IMAGE}
# The agent runs `nginx -t` on every new generation before the nginx container reloads
# it, so it needs the same nginx and modules as Dockerfile.nginx.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      nginx libnginx-mod-http-lua lua-resty-core lua-cjson libnginx-mod-stream libnginx-mod-stream-js \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production
WORKDIR /app
COPY package.json ./
COPY --from=dependencies /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
# Numeric, so that the kubelet can verify runAsNonRoot.
USER 65532:65532
ENTRYPOINT ["node", "/app/dist/cli.js"]
CMD ["--help"]
