FROM alpine:3.19
RUN apk add --no-cache \
    haproxy ca-certificates \
 && addgroup -S haproxy \
 && adduser -S -G haproxy haproxy
COPY --chmod=0755 docker-entrypoint.sh /usr/local/bin/
VOLUME ["/var/lib/haproxy"]
WORKDIR /var/lib/haproxy
STOPSIGNAL SIGUSR1
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["haproxy"]
