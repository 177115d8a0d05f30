# escape=`
FROM mcr.microsoft.com/windows/servercore:ltsc2022
SHELL ["powershell", "-Command", "$ErrorActionPreference = 'Stop'; $ProgressPreference = 'SilentlyContinue';"]
ENV GO_HOME=C:\go
RUN Invoke-WebRequest -Uri https://go.dev/dl/go1.22.5.windows-amd64.zip -OutFile C:\go.zip ; `
    Expand-Archive C:\go.zip -DestinationPath C:\go ; `
    Remove-Item C:\go.zip -Force
RUN setx /M PATH $('C:\go\bin;' + $Env:PATH)
WORKDIR C:\go
COPY config\ C:\go\config\
CMD ["go.exe", "--version"]
