FROM node:20
RUN mkdir -p /usr/src/app
WORKDIR /usr/src/app
ONBUILD ARG BUILD_ENV=production
ONBUILD COPY . /usr/src/app
ONBUILD RUN npm ci && npm run build
ONBUILD ENV APP_ENV=$BUILD_ENV
ONBUILD HEALTHCHECK --interval=1m CMD ["true"]
CMD ["sh", "-c", "echo override me"]
