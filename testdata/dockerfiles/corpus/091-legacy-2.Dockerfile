FROM debian:jessie
MAINTAINER ops@example.com
ENV HOME /root
ENV LANG en_US.UTF-8
RUN apt-get update && apt-get install -y apache2
ADD . /opt/service
ADD http://example.com/config.tar.gz /tmp/
EXPOSE 80
VOLUME /opt/service/data /var/log/service
CMD /opt/service/run.sh
