FROM debian:bookworm-slim

# explicitly set user/group IDs
RUN set -eux; \
	groupadd -r mariadb --gid=999; \
	useradd -r -g mariadb --uid=999 --home-dir=/var/lib/mariadb --shell=/bin/bash mariadb; \
	mkdir -p /var/lib/mariadb; \
	chown -R mariadb:mariadb /var/lib/mariadb

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

ENV MARIADB_MAJOR 11
ENV MARIADB_VERSION 11.4.2
ENV PATH $PATH:/usr/lib/mariadb/${MARIADB_MAJOR}/bin
ENV PGDATA /var/lib/mysql
RUN mkdir -p "$PGDATA" && chown -R mariadb:mariadb "$PGDATA" && chmod 1777 "$PGDATA"
VOLUME /var/lib/mysql

COPY docker-entrypoint.sh /usr/local/bin/
ENTRYPOINT ["docker-entrypoint.sh"]

STOPSIGNAL SIGINT
EXPOSE 3306
CMD ["mariadb"]
