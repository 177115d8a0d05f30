FROM alpine:3.20
RUN apk add --no-cache \
    squid openssl \
 && addgroup -S squid \
 && adduser -S -G squid squid
COPY --chmod=0755 docker-entrypoint.sh /usr/local/bin/
VOLUME ["/var/lib/squid"]
WORKDIR /var/lib/squid
STOPSIGNAL SIGINT
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["squid"]
