FROM debian:bookworm-slim

# explicitly set user/group IDs
RUN set -eux; \
	groupadd -r cassandra --gid=999; \
	useradd -r -g cassandra --uid=999 --home-dir=/var/lib/cassandra --shell=/bin/bash cassandra; \
	mkdir -p /var/lib/cassandra; \
	chown -R cassandra:cassandra /var/lib/cassandra

ENV GOSU_VERSION 1.17
RUN set -eux; \
	savedAptMark="$(apt-mark showmanual)"; \
	apt-get update; \
	apt-get install -y --no-install-recommends ca-certificates wget; \
	rm -rf /var/lib/apt/lists/*; \
	dpkgArch="$(dpkg --print-architecture | awk -F- '{ print $NF }')"; \
	wget -O /usr/local/bin/gosu "https://github.com/tianon/gosu/releases/download/$GOSU_VERSION/gosu-$dpkgArch"; \
	chmod +x /usr/local/bin/gosu; \
	gosu --version; \
	gosu nobody true

ENV CASSANDRA_MAJOR 4
ENV CASSANDRA_VERSION 4.1.5
ENV PATH $PATH:/usr/lib/cassandra/${CASSANDRA_MAJOR}/bin
ENV PGDATA /var/lib/cassandra
RUN mkdir -p "$PGDATA" && chown -R cassandra:cassandra "$PGDATA" && chmod 1777 "$PGDATA"
VOLUME /var/lib/cassandra

COPY docker-entrypoint.sh /usr/local/bin/
ENTRYPOINT ["docker-entrypoint.sh"]

STOPSIGNAL SIGINT
EXPOSE 9042
CMD ["cassandra"]
