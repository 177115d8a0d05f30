FROM mcr.microsoft.com/dotnet/sdk:6.0 AS build
ARG BUILD_CONFIGURATION=Release
WORKDIR /src
COPY ["Legacy.Api/Legacy.Api.csproj", "Legacy.Api/"]
RUN dotnet restore "Legacy.Api/Legacy.Api.csproj"
COPY . .
WORKDIR "/src/Legacy.Api"
RUN dotnet publish "Legacy.Api.csproj" -c $BUILD_CONFIGURATION -o /app/publish /p:UseAppHost=false

FROM mcr.microsoft.com/dotnet/aspnet:6.0 AS final
WORKDIR /app
EXPOSE 80
ENV ASPNETCORE_URLS=http://+:80
COPY --from=build /app/publish .
ENTRYPOINT ["dotnet", "Legacy.Api.dll"]
