# escape=`
FROM mcr.microsoft.com/windows/servercore:ltsc2022
SHELL ["powershell", "-Command", "$ErrorActionPreference = 'Stop'; $ProgressPreference = 'SilentlyContinue';"]
ENV PYTHON_HOME=C:\python
RUN Invoke-WebRequest -Uri https://example.com/python.zip -OutFile C:\python.zip ; `
    Expand-Archive C:\python.zip -DestinationPath C:\python ; `
    Remove-Item C:\python.zip -Force
RUN setx /M PATH $('C:\python\bin;' + $Env:PATH)
WORKDIR C:\python
COPY config\ C:\python\config\
CMD ["python.exe", "--version"]
