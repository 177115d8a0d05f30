FROM python:3.12
RUN mkdir -p /app
WORKDIR /app
ONBUILD ARG BUILD_ENV=production
ONBUILD COPY . /app
ONBUILD RUN pip install -r requirements.txt
ONBUILD ENV APP_ENV=$BUILD_ENV
ONBUILD HEALTHCHECK --interval=1m CMD ["true"]
CMD ["sh", "-c", "echo override me"]
