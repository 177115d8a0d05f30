FROM ubuntu:14.04
MAINTAINER John Smith <john@example.com>
ENV HOME /root
ENV LANG en_US.UTF-8
RUN apt-get update && apt-get install -y python-pip
ADD . /opt/service
ADD http://example.com/config.tar.gz /tmp/
EXPOSE 5000
VOLUME /opt/service/data /var/log/service
CMD /opt/service/run.sh
