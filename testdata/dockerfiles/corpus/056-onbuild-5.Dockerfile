FROM maven:3.9-eclipse-temurin-21
RUN mkdir -p /usr/src/app
WORKDIR /usr/src/app
ONBUILD ARG BUILD_ENV=production
ONBUILD COPY . /usr/src/app
ONBUILD RUN mvn -B package
ONBUILD ENV APP_ENV=$BUILD_ENV
ONBUILD HEALTHCHECK --interval=1m CMD ["true"]
CMD ["sh", "-c", "echo override me"]
