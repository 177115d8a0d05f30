FROM debian:bookworm-slim

# explicitly set user/group IDs
RUN set -eux; \
	groupadd -r mongodb --gid=999; \
	useradd -r -g mongodb --uid=999 --home-dir=/var/lib/mongodb --shell=/bin/bash mongodb; \
	mkdir -p /var/lib/mongodb; \
	chown -R mongodb:mongodb /var/lib/mongodb

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

ENV MONGODB_MAJOR 7
ENV MONGODB_VERSION 7.0.12
ENV PATH $PATH:/usr/lib/mongodb/${MONGODB_MAJOR}/bin
ENV PGDATA /data/db
RUN mkdir -p "$PGDATA" && chown -R mongodb:mongodb "$PGDATA" && chmod 1777 "$PGDATA"
VOLUME /data/db

COPY docker-entrypoint.sh /usr/local/bin/
ENTRYPOINT ["docker-entrypoint.sh"]

STOPSIGNAL SIGINT
EXPOSE 27017
CMD ["mongodb"]
