FROM centos:7
MAINTAINER Acme Corp
ENV HOME /root
ENV LANG en_US.UTF-8
RUN apt-get update && apt-get install -y httpd
ADD . /opt/service
ADD http://example.com/config.tar.gz /tmp/
EXPOSE 8080
VOLUME /opt/service/data /var/log/service
CMD /opt/service/run.sh
