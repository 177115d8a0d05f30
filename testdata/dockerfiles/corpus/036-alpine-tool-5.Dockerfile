FROM alpine:edge
RUN apk add --no-cache \
    mosquitto mosquitto-clients \
 && addgroup -S mosquitto \
 && adduser -S -G mosquitto mosquitto
COPY --chmod=0755 docker-entrypoint.sh /usr/local/bin/
VOLUME ["/var/lib/mosquitto"]
WORKDIR /var/lib/mosquitto
STOPSIGNAL SIGTERM
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["mosquitto"]
