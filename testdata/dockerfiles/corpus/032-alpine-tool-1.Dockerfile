FROM alpine:3.20
RUN apk add --no-cache \
    redis su-exec tzdata \
 && addgroup -S redis \
 && adduser -S -G redis redis
COPY --chmod=0755 docker-entrypoint.sh /usr/local/bin/
VOLUME ["/var/lib/redis"]
WORKDIR /var/lib/redis
STOPSIGNAL SIGTERM
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis"]
