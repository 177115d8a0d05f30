FROM ubuntu:16.04
MAINTAINER dev team
ENV HOME /root
ENV LANG en_US.UTF-8
RUN apt-get update && apt-get install -y supervisor
ADD . /opt/service
ADD http://example.com/config.tar.gz /tmp/
EXPOSE 9001
VOLUME /opt/service/data /var/log/service
CMD /opt/service/run.sh
