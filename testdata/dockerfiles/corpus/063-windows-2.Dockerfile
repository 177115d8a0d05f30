# escape=`
FROM mcr.microsoft.com/windows/servercore:ltsc2019
SHELL ["powershell", "-Command", "$ErrorActionPreference = 'Stop'; $ProgressPreference = 'SilentlyContinue';"]
ENV GIT_HOME=C:\git
RUN Invoke-WebRequest -Uri https://example.com/git.zip -OutFile C:\git.zip ; `
    Expand-Archive C:\git.zip -DestinationPath C:\git ; `
    Remove-Item C:\git.zip -Force
RUN setx /M PATH $('C:\git\bin;' + $Env:PATH)
WORKDIR C:\git
COPY config\ C:\git\config\
CMD ["git.exe", "--version"]
