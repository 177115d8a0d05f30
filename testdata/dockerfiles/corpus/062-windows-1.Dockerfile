# escape=`
FROM mcr.microsoft.com/windows/servercore:ltsc2022
SHELL ["powershell", "-Command", "$ErrorActionPreference = 'Stop'; $ProgressPreference = 'SilentlyContinue';"]
ENV NODE_HOME=C:\node
RUN Invoke-WebRequest -Uri https://nodejs.org/dist/v20.15.0/node-v20.15.0-win-x64.zip -OutFile C:\node.zip ; `
    Expand-Archive C:\node.zip -DestinationPath C:\nodejs ; `
    Remove-Item C:\node.zip -Force
RUN setx /M PATH $('C:\nodejs\bin;' + $Env:PATH)
WORKDIR C:\nodejs
COPY config\ C:\nodejs\config\
CMD ["node.exe", "--version"]
