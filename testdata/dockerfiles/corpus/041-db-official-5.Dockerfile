FROM debian:bookworm-slim

# explicitly set user/group IDs
RUN set -eux; \
	groupadd -r couchdb --gid=999; \
	useradd -r -g couchdb --uid=999 --home-dir=/var/lib/couchdb --shell=/bin/bash couchdb; \
	mkdir -p /var/lib/couchdb; \
	chown -R couchdb:couchdb /var/lib/couchdb

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

ENV COUCHDB_MAJOR 3
ENV COUCHDB_VERSION 3.3.3
ENV PATH $PATH:/usr/lib/couchdb/${COUCHDB_MAJOR}/bin
ENV PGDATA /opt/couchdb/data
RUN mkdir -p "$PGDATA" && chown -R couchdb:couchdb "$PGDATA" && chmod 1777 "$PGDATA"
VOLUME /opt/couchdb/data

COPY docker-entrypoint.sh /usr/local/bin/
ENTRYPOINT ["docker-entrypoint.sh"]

STOPSIGNAL SIGINT
EXPOSE 5984
CMD ["couchdb"]
