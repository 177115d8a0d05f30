FROM denoland/deno:alpine-1.44.4
EXPOSE 8001
WORKDIR /app
USER deno
COPY deps.ts .
RUN deno cache deps.ts
ADD . .
RUN deno cache app.ts
CMD ["run", "--allow-net", "--allow-env", "app.ts"]
