FROM golang:1.22
RUN mkdir -p /go/src/app
WORKDIR /go/src/app
ONBUILD ARG BUILD_ENV=production
ONBUILD COPY . /go/src/app
ONBUILD RUN go build -o /bin/app ./...
ONBUILD ENV APP_ENV=$BUILD_ENV
ONBUILD HEALTHCHECK --interval=1m CMD ["true"]
CMD ["sh", "-c", "echo override me"]
