FROM alpine:3.18
RUN apk add --no-cache \
    memcached libevent \
 && addgroup -S memcached \
 && adduser -S -G memcached memcached
COPY --chmod=0755 docker-entrypoint.sh /usr/local/bin/
VOLUME ["/var/lib/memcached"]
WORKDIR /var/lib/memcached
STOPSIGNAL SIGTERM
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["memcached"]
